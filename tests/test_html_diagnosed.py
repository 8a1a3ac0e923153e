"""The HTML picture of the recorded real hangs in ``tests/data/reports/`` (the wandb 0.10.31
rank 0 and group cases among them) with the diagnosis the engine computes for them today: every
process, every wait-for edge, the root causes and the findings are on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_html import parse

from pytest_spawnhang.diagnosis import diagnose
from pytest_spawnhang.model import Report
from pytest_spawnhang.render.html import wait_edges

REPORTS = Path(__file__).parent / "data" / "reports"
CASES = sorted(p.stem for p in REPORTS.glob("*.json"))


def diagnosed(case: str) -> Report:
    report = Report.load(REPORTS / f"{case}.json")
    report.diagnosis = diagnose(report)
    return report


@pytest.mark.parametrize("case", CASES)
def test_processes_edges_root_causes_and_findings_are_on_the_page(case: str) -> None:
    report = diagnosed(case)
    page = parse(report)
    pids = {p.pid for p in report.processes}
    for proc in report.processes:
        assert proc.label in page.one("g", cls="node", data_pid=proc.pid).text
    for edge in wait_edges(report):
        page.one("li", cls="edge", data_waiter=edge.waiter_pid, data_target=edge.target_pid)
        drawn = page.find("path", cls="wait", data_waiter=edge.waiter_pid,
                          data_target=edge.target_pid)
        assert len(drawn) == (1 if {edge.waiter_pid, edge.target_pid} <= pids else 0)
    roots = set(report.diagnosis.root_causes)
    assert roots, "every recorded case has a root cause"
    for pid in pids:
        node = page.one("g", cls="node", data_pid=pid)
        assert (node.attrs.get("data-root-cause") == "true") is (pid in roots)
    rules = [a.attrs["data-rule"] for a in page.find("article", cls="finding")]
    assert rules == [f.rule for f in report.diagnosis.findings]


@pytest.mark.parametrize("case", ["legacy_wandb_rank0", "legacy_wandb_group"])
def test_the_issue_hang_is_drawn_with_its_cause_and_fix(case: str) -> None:
    report = diagnosed(case)
    page = parse(report)
    internals = report.by_role("wandb_internal")
    assert internals
    for internal in internals:
        node = page.one("g", cls="node", data_pid=internal.pid)
        assert node.attrs["data-root-cause"] == "true"
        page.one("path", cls="wait", data_waiter=internal.ppid, data_target=internal.pid)
    (finding,) = page.find("article", cls="finding")
    assert finding.attrs["data-rule"] == "wandb-internal-joined-at-exit"
    assert "wandb.finish()" in page.one("div", cls="advice").text
