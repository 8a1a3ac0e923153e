"""Stall detection: call a hang when the whole tree has been idle and unchanged for a window.

Three cheap signals, from cheapest to dearest: the set of processes (every poll), CPU time per
process from /proc (once a second), and the Python stacks of every process (a few times per
window). Any of them moving restarts the window, so a CPU-bound worker whose stack never changes
is progress, not a stall, and so is a process that starts or ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import psutil

from .dump import dump_many
from .tree import ProcessTracker

CPU_EVERY_S = 1.0
# Per process, CPU above this fraction of one core over a sample is work, below it noise
# (clock-tick granularity is 10 ms; idle wandb and gloo threads wake now and then).
CPU_NOISE_FRACTION = 0.05


# An extra source of progress: CPU seconds used so far, per key (a thread of the launcher, say).
ProgressSource = Callable[[], dict[Hashable, float]]


@dataclass
class StallDetector:
    """``progress`` adds sources of progress beyond the tracked processes' CPU; with
    ``needs_processes`` a tree with no live process never stalls (its window starts with the
    first process)."""

    window_s: float
    progress: tuple[ProgressSource, ...] = ()
    needs_processes: bool = False
    quiet_since: float | None = None
    cpu_samples: int = 0
    stack_samples: int = 0
    cpu_in_window_s: float = 0.0
    _last_cpu_at: float = 0.0
    _cpu: dict[Hashable, float] = field(default_factory=dict)
    _last_stack_at: float = 0.0
    _stacks: frozenset | None = None
    _stacks_seen_in_window: int = 0

    @property
    def stack_every_s(self) -> float:
        return min(max(self.window_s / 4, 0.5), 5.0)

    def observe(self, tracker: ProcessTracker, changes: int, now: float) -> bool:
        """Feed one poll of the tree; True once the window has passed with nothing moving."""
        if self.needs_processes and not tracker.alive():
            self.quiet_since = None
            return False
        if self.quiet_since is None or changes:
            self._restart(now)
            return False
        if now - self._last_cpu_at >= CPU_EVERY_S:
            if self._cpu_moved(tracker, now):
                self._restart(now)
                return False
        if now - self._last_stack_at >= self.stack_every_s:
            if self._stacks_moved(tracker, now):
                self._restart(now)
                self._stacks_seen_in_window = 1
                return False
        # Two equal stack samples inside the window: the tree is parked, not between steps.
        return now - self.quiet_since >= self.window_s and self._stacks_seen_in_window >= 2

    def _restart(self, now: float) -> None:
        self.quiet_since = now
        self.cpu_in_window_s = 0.0
        self._stacks_seen_in_window = 0

    def _cpu_moved(self, tracker: ProcessTracker, now: float) -> bool:
        elapsed = now - self._last_cpu_at if self._last_cpu_at else None
        self._last_cpu_at = now
        self.cpu_samples += 1
        current = self._cpu_times(tracker)
        moved = False
        if elapsed is not None:
            for pid, cpu in current.items():
                used = cpu - self._cpu.get(pid, cpu)
                self.cpu_in_window_s += used
                moved = moved or used > CPU_NOISE_FRACTION * elapsed
        self._cpu = current
        return moved

    def _cpu_times(self, tracker: ProcessTracker) -> dict[Hashable, float]:
        """CPU seconds used so far, per source of progress: each tracked process, and the
        extra sources."""
        current: dict[Hashable, float] = {}
        for known in tracker.alive():
            try:
                times = known.process.cpu_times()
            except psutil.Error:
                continue
            current[known.pid] = times.user + times.system
        for source in self.progress:
            current.update(source())
        return current

    def _stacks_moved(self, tracker: ProcessTracker, now: float) -> bool:
        self._last_stack_at = now
        self.stack_samples += 1
        # Without stopping anything: a stopped wait loses its arguments (restart_syscall), and
        # the hang's report reads them from the kernel later.
        dumps = dump_many([k.pid for k in tracker.alive()], nonblocking=True)
        stacks = frozenset(
            (pid, t.id, tuple((f.function, f.file, f.line) for f in t.frames))
            for pid, dump in dumps.items()
            for t in dump.threads
        )
        moved = self._stacks is not None and stacks != self._stacks
        self._stacks = stacks
        self._stacks_seen_in_window += 1
        return moved

    def evidence(self) -> dict[str, float | int]:
        return {
            "window_s": self.window_s,
            "quiet_for_s": round(time.monotonic() - (self.quiet_since or 0.0), 3),
            "cpu_in_window_s": round(self.cpu_in_window_s, 3),
            "cpu_samples": self.cpu_samples,
            "stack_samples": self.stack_samples,
        }
