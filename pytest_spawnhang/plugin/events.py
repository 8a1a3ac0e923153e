"""The events the terminal summary is made of: a declared vocabulary of plain data classes.

They travel as dicts (``to_dict``) from an xdist worker to the controller, with a test's report
and in ``workeroutput``; ``from_dict`` rebuilds them there and rejects a kind it does not know,
as pytest-xdist rejects unknown events from its workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class ProcessInfo:
    pid: int
    cmdline: str
    owner: str | None = None  # who started it, when known (session sweep)


@dataclass
class HangEvent:
    """A test that hung (or was interrupted): one line of the summary."""

    kind: ClassVar[str] = "hang"
    nodeid: str
    trigger: str
    summary: str  # the diagnosis's headline
    report: str  # where report.html is, or why it was not written
    expected: bool  # the marker said expect="hang"
    trigger_to_report_s: float | None = None
    trigger_to_failure_s: float | None = None


@dataclass
class LeftoverEvent:
    """Processes that outlived their owner (a test or a fixture)."""

    kind: ClassVar[str] = "leftover"
    owner: str
    policy: str
    processes: list[ProcessInfo] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)


@dataclass
class SessionEvent:
    """What was still alive at the end of the session, and was reaped."""

    kind: ClassVar[str] = "session"
    processes: list[ProcessInfo] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)


Event = HangEvent | LeftoverEvent | SessionEvent
KINDS: dict[str, type[Event]] = {k.kind: k for k in (HangEvent, LeftoverEvent, SessionEvent)}


def to_dict(event: Event) -> dict[str, Any]:
    return {"kind": event.kind, **dataclasses.asdict(event)}


def from_dict(data: dict[str, Any]) -> Event:
    """Raises ValueError for a kind outside the vocabulary."""
    data = dict(data)
    kind = KINDS.get(data.pop("kind", None))
    if kind is None:
        raise ValueError(f"spawnhang: unknown summary event {data!r}")
    if "processes" in data:
        data["processes"] = [ProcessInfo(**p) for p in data["processes"]]
    return kind(**data)
