"""One test as the plugin sees it (a ``Job``), and the cheap looks at pytest's children that
every test pays for. Nothing here imports the engine."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from .plugin import Marker

if TYPE_CHECKING:
    from .engine import Watch
    from .plugin_watch import Hang, Tracker


def has_children() -> bool:
    """Whether this process has any child, of any of its threads, alive or not yet waited for:
    one system call, where ``direct_children`` reads /proc. WNOWAIT leaves a child's exit
    status to whoever waits for it."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def direct_children() -> frozenset[int]:
    """This process's children, read from /proc without scanning every process. pytest is a
    child subreaper, so when none of them is new, none of its descendants is either."""
    pids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:  # os.open and os.read: half the cost of open(), and this may run once per test
            fd = os.open(f"/proc/self/task/{tid}/children", os.O_RDONLY)
        except FileNotFoundError:  # the thread has ended since listdir
            continue
        try:
            pids.update(map(int, os.read(fd, 1 << 20).split()))
        finally:
            os.close(fd)
    return frozenset(pids)


if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children"):

    def direct_children() -> frozenset[int]:  # a kernel without CONFIG_PROC_CHILDREN
        import psutil

        return frozenset(p.pid for p in psutil.Process().children())


@dataclass(eq=False)
class Job:
    """One test, from the start of its setup to the end of its teardown."""

    item: pytest.Item
    marker: Marker
    exclude: frozenset[int]  # pytest's children before the test (and those fixtures own)
    stall_s: float | None
    timeout_s: float | None = None
    timeout_from: str | None = None
    deadline: float | None = None  # time.monotonic()
    started: float = field(default_factory=time.monotonic)
    wall_started: float = field(default_factory=time.time)
    lock: threading.RLock = field(default_factory=threading.RLock)
    func_only: bool = False  # pytest-timeout's deadline covers the call only
    finished: bool = False
    _tracker: Tracker | None = None
    # Set by the watcher when it takes the job up (most jobs never are):
    watch: Watch | None = None
    picked: bool = False
    done: threading.Event | None = None  # the hang is captured and the report written
    responded: threading.Event | None = None  # the main thread got back to pytest
    released: threading.Event | None = None  # the watcher is done with the job
    # Set once the job fired:
    fired: str | None = None  # "deadline" or "stall"
    fired_at: float = 0.0
    hang: Hang | None = None
    interrupted: bool = False
    applied: bool = False

    @property
    def watchable(self) -> bool:
        return self.deadline is not None or self.stall_s is not None

    @property
    def tracked(self) -> bool:
        """Whether the test's processes have been looked at (by the watcher, or a fixture)."""
        return self._tracker is not None

    def tracker(self) -> Tracker:
        with self.lock:
            if self._tracker is None:
                from .plugin_watch import Tracker

                self._tracker = Tracker(root_pid=os.getpid(), exclude=self.exclude)
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
                self.watch.deadline = self.deadline
                self.watch.wake.set()

    def stop_timers(self) -> None:
        """A debugger took over: nothing fires any more."""
        with self.lock:
            self.set_deadline(None, None)
            self.stall_s = None
            if self.watch is not None:
                self.watch.stall = None
