"""The report schema: recorded reports round-trip through the dataclasses, and every verdict,
trigger and role the code knows is documented in docs/report-schema.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_spawnhang.model import ROLES, TRIGGERS, VERDICTS, Report

ROOT = Path(__file__).resolve().parents[1]
RECORDED = sorted((ROOT / "tests" / "data" / "reports").glob("*.json"))


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_recorded_reports_round_trip_and_use_known_values(path: Path) -> None:
    raw = json.loads(path.read_text())
    report = Report.from_dict(raw)
    assert Report.from_dict(report.to_dict()) == report
    assert report.verdict in VERDICTS and report.trigger in TRIGGERS
    assert {p.role for p in report.processes} <= set(ROLES)
    assert all(t.frames == [] or t.frames[0].function for p in report.processes
               for t in p.threads)


def test_unknown_keys_from_a_newer_writer_are_ignored() -> None:
    raw = json.loads(RECORDED[0].read_text())
    raw["a_field_from_the_future"] = 1
    raw["processes"][0]["another"] = {"x": 1}
    assert Report.from_dict(raw).processes[0].pid == raw["processes"][0]["pid"]


def test_every_verdict_trigger_and_role_is_documented() -> None:
    schema = (ROOT / "docs" / "report-schema.md").read_text()
    for name in (*VERDICTS, *TRIGGERS, *ROLES):
        assert f"`{name}`" in schema or f'`"{name}"`' in schema, name


def test_engine_reports_hold_plain_strings() -> None:
    """Enum members stay in the code: a report holds plain strings, so it pickles and travels
    through xdist's execnet (which refuses str subclasses such as StrEnum members)."""
    import pickle
    import sys

    from execnet.gateway_base import dumps_internal

    from pytest_spawnhang.engine import run_command

    report = run_command([sys.executable, "-c", "raise SystemExit(3)"], timeout_s=30)
    assert (type(report.verdict), type(report.trigger)) == (str, str)
    assert report.verdict == "fail" and report.trigger == "exit"
    dumps_internal([report.verdict, report.trigger])
    assert pickle.loads(pickle.dumps(report)).verdict == "fail"
