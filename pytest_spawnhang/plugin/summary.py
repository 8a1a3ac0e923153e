"""The ``spawnhang`` section of the terminal summary, from the events the session gathered
(its own, or those of pytest-xdist's workers): one line per hung test, the processes that
outlived their owner grouped by owner, and what was reaped at the end of the session."""

from __future__ import annotations

from typing import Any

import pytest

from .events import Event, HangEvent, LeftoverEvent, ProcessInfo, SessionEvent, from_dict


class Summary:
    """Gathers the events of this process's tests and prints them at the end."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.events:
            write_summary(terminalreporter, self.events)


class XdistSummary(Summary):
    """On the xdist controller, which runs no test: the workers' events come with their test
    reports (an attribute xdist serialises) and, for the end of their sessions, with their
    ``workeroutput``."""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.events.extend(map(from_dict, getattr(report, "spawnhang", ())))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any) -> None:
        self.events.extend(map(from_dict, getattr(node, "workeroutput", {}).get("spawnhang", ())))


def write_summary(terminalreporter: Any, events: list[Event]) -> None:
    write = terminalreporter.write_line
    terminalreporter.section("spawnhang")
    for event in (e for e in events if isinstance(e, HangEvent)):
        verdict = ("INTERRUPTED" if event.trigger == "cancelled"
                   else "HANG (expected)" if event.expected else "HANG")
        write(f"{verdict} {event.nodeid} - {event.summary} (report: {event.report})")
    groups: dict[tuple[str, str], list[ProcessInfo]] = {}
    for event in (e for e in events if isinstance(e, LeftoverEvent)):
        groups.setdefault((event.owner, event.policy), []).extend(event.processes)
    for (owner, policy), processes in groups.items():
        action = "left running" if policy == "warn" else "reaped"
        write(f"LEFTOVER {len(processes)} process(es) outlived {owner} ({action}, "
              f"leaks={policy}):")
        for proc in processes:
            write(f"    pid {proc.pid}: {proc.cmdline}")
    for event in (e for e in events if isinstance(e, SessionEvent)):
        write(f"REAPED at session end: {len(event.processes)} process(es)")
        for proc in event.processes:
            owner = f"left by {proc.owner}" if proc.owner else "owner unknown"
            write(f"    pid {proc.pid} ({owner}): {proc.cmdline}")
    survivors = sorted({pid for e in events if not isinstance(e, HangEvent)
                        for pid in e.survivors})
    if survivors:
        write(f"WARNING: could not kill {survivors}")
