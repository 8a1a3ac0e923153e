"""One test as the plugin sees it (a ``Job``), shared by the main thread, which runs the test,
and the watcher thread, which may take it up and capture its hang.

The watcher's side is a state machine (``JobState``), advanced only along ``_NEXT``, under the
job's lock:

    IDLE --watcher takes it up--> WATCHED --deadline/stall--> FIRED --captured--> CAPTURED
    IDLE --SIGINT/SIGTERM of pytest--> FIRED                  CAPTURED --SIGALRM--> INTERRUPTED
    CAPTURED or INTERRUPTED --the main thread rewrote the report or passed the event on--> APPLIED

The main thread's side is ``ended``: set once, at the end of the test's teardown; the watcher
fires nothing after it.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from .. import engine
from .events import HangEvent
from .settings import TestPlan

if TYPE_CHECKING:
    from ..engine import ProcessTracker, Watch

NO_INTERRUPT_HERE = True  # the watcher's SIGALRM must not fail a phase from this code


class JobState(enum.Enum):
    IDLE = "idle"
    WATCHED = "watched"
    FIRED = "fired"
    CAPTURED = "captured"
    INTERRUPTED = "interrupted"
    APPLIED = "applied"


_NEXT = {
    JobState.IDLE: {JobState.WATCHED, JobState.FIRED},
    JobState.WATCHED: {JobState.FIRED},
    JobState.FIRED: {JobState.CAPTURED},
    JobState.CAPTURED: {JobState.INTERRUPTED, JobState.APPLIED},
    JobState.INTERRUPTED: {JobState.APPLIED},
    JobState.APPLIED: set(),
}
_FIRED = {JobState.FIRED, JobState.CAPTURED, JobState.INTERRUPTED, JobState.APPLIED}


@dataclass
class Hang:
    """What the main thread needs of a captured hang."""

    message: str  # the test's failure: the short diagnosis and where the report is
    text: str  # the whole report, for the test's report section
    event: HangEvent  # the summary line


@dataclass(eq=False)
class Job:
    """One test, from the start of its setup to the end of its teardown."""

    item: pytest.Item
    plan: TestPlan
    exclude: frozenset[int]  # pytest's children before the test (and those fixtures own)
    started: float = field(default_factory=time.monotonic)
    wall_started: float = field(default_factory=time.time)
    lock: threading.RLock = field(default_factory=threading.RLock)
    state: JobState = JobState.IDLE
    ended: bool = False
    func_only: bool = False  # pytest-timeout's deadline covers the call only
    deadline: float | None = None  # time.monotonic()
    timeout_s: float | None = None
    timeout_from: str | None = None
    stall_s: float | None = None
    watch: Watch | None = None  # once the watcher took the job up
    trigger: str | None = None  # what fired: "deadline", "stall" or "cancelled"
    fired_at: float = 0.0
    hang: Hang | None = None
    captured: threading.Event = field(default_factory=threading.Event)
    responded: threading.Event = field(default_factory=threading.Event)  # main thread is back
    released: threading.Event = field(default_factory=threading.Event)  # watcher is done
    _tracker: ProcessTracker | None = None

    def __post_init__(self) -> None:
        self.stall_s = self.plan.stall_s
        self.set_deadline(self.plan.timeout_s, self.plan.timeout_from)

    def advance(self, to: JobState) -> bool:
        """Move to ``to`` if the machine allows it from here (and, for firing, the test has
        not ended); returns whether it moved."""
        with self.lock:
            if to not in _NEXT[self.state] or (to is JobState.FIRED and self.ended):
                return False
            self.state = to
            return True

    @property
    def fired(self) -> bool:
        return self.state in _FIRED

    @property
    def watchable(self) -> bool:
        return self.deadline is not None or self.stall_s is not None

    @property
    def tracked(self) -> bool:
        """Whether the test's processes have been looked at (by the watcher, or a fixture)."""
        return self._tracker is not None

    def tracker(self) -> ProcessTracker:
        with self.lock:
            if self._tracker is None:
                self._tracker = engine.ProcessTracker(root_pid=os.getpid(), exclude=self.exclude)
            return self._tracker

    def disown(self, pids: frozenset[int]) -> None:
        with self.lock:
            self.exclude |= pids
            if self._tracker is not None:
                self._tracker.disown(pids)

    def set_deadline(self, timeout_s: float | None, source: str | None) -> None:
        with self.lock:
            self.timeout_s, self.timeout_from = timeout_s, source
            self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
            if self.watch is not None:
                self.watch.set_deadline(self.deadline)

    def stop_timers(self) -> None:
        """A debugger took over: nothing fires any more."""
        with self.lock:
            self.set_deadline(None, None)
            self.stall_s = None
            if self.watch is not None:
                self.watch.stop_stall()
