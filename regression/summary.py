"""The matrix's closing lines: how many hangs were caught and explained, how many variants exited,
per wandb version, how many table checks passed and why the rest were skipped; then each caught
hang with its diagnosis. Counted from the test reports (on pytest-xdist's controller too: it
receives every worker's reports), never from the tables."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pytest_spawnhang.values import DEFAULT_STALL_S

ROOT = "regression/"
TABLES = "regression/test_tables.py::"
WORDS = {"hang": ("hang", "caught and explained"), "exit": ("exit", "")}


class MatrixSummary:
    def __init__(self) -> None:
        self.verdicts: Counter[tuple[str, str]] = Counter()  # (verdict, wandb) -> passed tests
        self.skips: Counter[str] = Counter()  # reason, up to its first colon -> tests
        self.tables = 0
        self.failed: set[str] = set()
        self.hangs: list[tuple[str, str, str]] = []  # (node id, how it was called, diagnosis)
        self.quiet_s = 0.0  # the longest quiet polling of a variant that exits

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith(ROOT):
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else "?"
            self.skips[reason.removeprefix("Skipped: ").split(":")[0]] += 1
        elif report.failed:
            self.failed.add(report.nodeid)
        elif report.when == "call":
            props = dict(report.user_properties)
            if "matrix_verdict" not in props:
                self.tables += report.nodeid.startswith(TABLES)
                return
            self.verdicts[props["matrix_verdict"], props["matrix_wandb"]] += 1
            if props["matrix_verdict"] == "exit":
                self.quiet_s = max(self.quiet_s, props.get("matrix_longest_quiet_s", 0.0))
            if props["matrix_verdict"] == "hang":
                self.hangs.append((report.nodeid, props.get("matrix_called_by", "?"),
                                   props["matrix_diagnosis"]))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        line = summary_line(self.verdicts, self.tables, len(self.failed), self.skips)
        if line is None:
            return
        terminalreporter.section("spawnhang matrix")
        for nodeid, called_by, diagnosis in sorted(self.hangs):
            terminalreporter.write_line(f"CAUGHT {nodeid.split('::')[-1]} ({called_by})")
            for text in diagnosis.splitlines():
                terminalreporter.write_line(f"    {text}")
        terminalreporter.write_line(line)
        if self.verdicts:
            terminalreporter.write_line(
                f"spawnhang: longest quiet polling in a variant that exits: {self.quiet_s:.1f}s "
                f"(hang detection's default window: {DEFAULT_STALL_S:g}s)")


def summary_line(verdicts: Counter[tuple[str, str]], tables: int, failed: int,
                 skips: Counter[str]) -> str | None:
    """``spawnhang: 12 hangs caught and explained with wandb 0.10.31, 43 exits with ...``; None when
    no matrix test ran (e.g. ``pytest tests``)."""
    hangs_first = sorted(verdicts.items(), key=lambda kv: (kv[0][0] != "hang", kv[0][1]))
    parts = [count(n, *WORDS[verdict], f"with {wandb}") for (verdict, wandb), n in hangs_first]
    if tables:
        parts.append(count(tables, "table check", "passed"))
    if failed:
        parts.append(f"{failed} failed")
    parts += [f"{n} skipped: {reason}" for reason, n in skips.most_common()]
    return f"spawnhang: {', '.join(parts)}" if parts else None


def count(n: int, noun: str, *words: str) -> str:
    return " ".join([str(n), noun if n == 1 else f"{noun}s", *filter(None, words)])
