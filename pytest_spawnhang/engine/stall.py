"""Hang detection in the watch loop: the rules of ``detect.py`` confirmed over time.

Every ``SAMPLE_S`` the kernel's waits of every tracked process are read (``read_waits``, a few
ms, nothing stopped). A *closed wait* is called when two readings in a row are closed, with the
same waits and no thread woken in between. *Polling without progress* is called once readings
have been polling for ``window_s`` with no process starting or ending, no CPU moving, and two
Python stacks (py-spy) taken across the window equal. Anything else restarts both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from .detect import Class, Reading, cycle, describe, judge
from .dump import dump_many
from .kernel import ProcessWaits, held_addresses, read_waits
from .tree import ProcessTracker

SAMPLE_S = 0.5
# Per process, CPU above this fraction of one core over a window is work, below it noise
# (clock-tick granularity is 10 ms; idle wandb and gloo threads wake now and then).
CPU_NOISE_FRACTION = 0.05


@dataclass
class Scope:
    """A process judged beyond the tracked tree, on some of its threads: pytest itself.
    ``skip`` gives the tids not judged now (the front end's own threads); waits whose every
    peer is a ``background`` pid are the session's channel (xdist's controller), not the
    program's."""

    pid: int
    skip: Callable[[], set[int]]
    background: frozenset[int] = frozenset()


class OtherNodes(Protocol):
    """The run's processes on other nodes (a job's), as far as detection needs them."""

    def addresses(self) -> frozenset[str]:
        """The TCP addresses that belong to the run beyond this tree: the other nodes'
        processes', and the harness's own (its client of the job's store)."""

    def share(self, quiet: str | None, addresses: frozenset[str]) -> None:
        """Publish this node's latest reading ("closed", "polling" or None) and addresses."""

    def agree(self, rule: str) -> bool:
        """Whether every other node is as quiet (closed, for a closed wait) and this node is the
        first to call the job's hang."""


@dataclass
class StallDetector:
    """Feed it every poll of the watch (``observe``); True once a rule fired (``rule``)."""

    window_s: float  # how long polling without progress must last
    scope: Scope | None = None
    others: OtherNodes | None = None
    rule: str | None = None
    readings: int = 0
    stack_samples: int = 0
    longest_quiet_s: float = 0.0  # the longest stretch of quiet polling seen, called or not
    _last_at: float = 0.0
    _previous: dict[int, ProcessWaits] | None = None
    _closed: Reading | None = None  # the last reading, when it was closed
    _python_loops: set[tuple[int, int]] = field(default_factory=set)
    _looping: dict[tuple[int, int], int | None] = field(default_factory=dict)
    _loop_threads: set[tuple[int, int]] = field(default_factory=set)  # seen looping, ever
    _poll_since: float | None = None
    _poll_cpu: dict[int, float] = field(default_factory=dict)
    _stacks: frozenset | None = None
    _facts: dict[str, object] = field(default_factory=dict)

    def observe(self, tracker: ProcessTracker, changes: int, now: float) -> bool:
        if changes:
            self._restart()
        if now - self._last_at < SAMPLE_S:
            return False
        self._last_at = now
        pids = [k.pid for k in tracker.alive()]
        skip: set[int] = set()
        if self.scope is not None:
            pids.append(self.scope.pid)
            skip = self.scope.skip()
        background = self.scope.background if self.scope is not None else frozenset()
        # The background pids are read too, so that waits on them are known as such.
        waits = read_waits([*pids, *background], previous=self._previous)
        self._previous = waits
        self.readings += 1
        own = {pid: w for pid, w in waits.items() if pid not in background}
        elsewhere = self.others.addresses() if self.others is not None else frozenset()
        reading = judge(own, time.time(), skip=skip, looping=set(self._looping),
                        loops=self._loop_threads, background=background, elsewhere=elsewhere)
        self._remember_loops(reading)
        reading.as_polling(self._python_loops)
        closed = self._closed_confirmed(reading) and not self._runs_python(reading)
        if self.others is not None:
            quiet = "closed" if closed else "polling" if reading.polling else None
            self.others.share(quiet, held_addresses(own))
        if closed:
            self._facts = {"confirmed_in_s": round(SAMPLE_S * 2, 1)}
            if self._agreed("closed wait", reading):
                return self._fire("closed wait", reading)
        if not reading.polling:
            self._poll_since, self._stacks = None, None
            self._facts = {"waiting_on": reading.blocker()}
            return False
        return self._polling(reading, pids, now)

    def _closed_confirmed(self, reading: Reading) -> bool:
        before, self._closed = self._closed, reading if reading.closed else None
        # Confirmed: the same waits twice, and no thread woke in between (polling is False,
        # not None: each thread sat in one call across both readings).
        return (before is not None and reading.closed
                and reading.signature() == before.signature()
                and all(j.wait.polling is False for j in reading.of(Class.ENDLESS)))

    def _runs_python(self, reading: Reading) -> bool:
        """Whether an event loop of ``reading`` is a Python thread (py-spy sees it): then it
        is a loop of the program's own, judged as polling from now on."""
        loops = {(j.pid, j.wait.tid) for j in reading.of(Class.EVENT_LOOP)}
        if not loops:
            return False
        dumps = dump_many(sorted({pid for pid, _tid in loops}), nonblocking=True)
        self._previous = None  # py-spy's stop woke the threads it interrupted
        python = {(pid, t.os_id) for pid, dump in dumps.items() for t in dump.threads}
        self._python_loops |= loops & python
        return bool(loops & python)

    def _polling(self, reading: Reading, pids: list[int], now: float) -> bool:
        cpu = self._cpu(pids)
        if self._poll_since is None or self._cpu_moved(cpu, now):
            self._poll_since, self._poll_cpu, self._stacks = now, cpu, None
            return False
        self.longest_quiet_s = max(self.longest_quiet_s, now - self._poll_since)
        if self._stacks is None and now - self._poll_since >= self.window_s / 2:
            self._stacks = self._stack_sample(pids)
        if now - self._poll_since < self.window_s or self._stacks is None:
            return False
        if self._stack_sample(pids) != self._stacks:
            self._poll_since, self._poll_cpu, self._stacks = now, cpu, None
            return False
        self._facts = {"quiet_for_s": round(now - self._poll_since, 3),
                       "cpu_in_window_s": round(sum(cpu.values()) - sum(
                           self._poll_cpu.get(p, 0.0) for p in cpu), 3)}
        if not self._agreed("polling without progress", reading):
            return False
        return self._fire("polling without progress", reading)

    def _agreed(self, rule: str, reading: Reading) -> bool:
        """A reading that leans on another node is the job's to call: every node must agree."""
        if not reading.elsewhere or self.others is None:
            return True
        if self.others.agree(rule):
            self._facts["nodes_agreed"] = True
            return True
        return False

    def _fire(self, rule: str, reading: Reading) -> bool:
        self.rule = rule
        endless = reading.of(Class.ENDLESS)
        self._facts.update({"waits": describe(
            reading.of(Class.POLLING, Class.EVENT_LOOP) + endless, 16)})
        loop = cycle(reading)
        if loop:
            self._facts["cycle"] = " -> ".join(f"pid {p}" for p in [*loop, loop[0]])
        return True

    def _remember_loops(self, reading: Reading) -> None:
        # A thread seen re-arming keeps counting as a loop while it stays in the same call,
        # though a reading may fall between two of its wake-ups, or a py-spy stop made the
        # kernel restart the call (restart_syscall).
        calls = {(j.pid, j.wait.tid): (j.wait.number, j.wait.syscall) for j in reading.threads}
        self._looping = {key: number for key, number in self._looping.items()
                         if key in calls and (calls[key][0] == number
                                              or calls[key][1] == "restart_syscall")}
        self._looping.update({(j.pid, j.wait.tid): j.wait.number for j in reading.threads
                              if j.wait.polling and j.wait.syscall != "restart_syscall"})
        self._loop_threads.update((j.pid, j.wait.tid)
                                  for j in reading.of(Class.POLLING, Class.EVENT_LOOP))

    def _restart(self) -> None:
        # A process started or ended: the waits it ended re-armed once (a join's poll moving to
        # the next child), which is no loop. Start afresh, from a new first reading.
        self._closed, self._poll_since, self._stacks = None, None, None
        self._previous = None
        self._looping.clear()
        self._loop_threads.clear()
        self._python_loops.clear()

    def _cpu(self, pids: list[int]) -> dict[int, float]:
        current: dict[int, float] = {}
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                if self.scope is not None and pid == self.scope.pid:
                    skip = self.scope.skip()  # the watch's own reading costs CPU here
                    current[pid] = sum(t.user_time + t.system_time for t in proc.threads()
                                       if t.id not in skip)
                else:
                    times = proc.cpu_times()
                    current[pid] = times.user + times.system
            except psutil.Error:
                continue
        return current

    def _cpu_moved(self, cpu: dict[int, float], now: float) -> bool:
        elapsed = max(now - (self._poll_since or now), SAMPLE_S)
        return any(used - self._poll_cpu.get(pid, used) > CPU_NOISE_FRACTION * elapsed
                   for pid, used in cpu.items())

    def _stack_sample(self, pids: list[int]) -> frozenset:
        """The Python stacks of every process, read without stopping them; the next wait
        reading starts afresh all the same, to compare only readings taken after the sample."""
        self.stack_samples += 1
        # Without stopping anything: a stopped wait loses its arguments (restart_syscall), and
        # the hang's report reads them from the kernel later.
        scope = self.scope.pid if self.scope is not None else None
        dumps = dump_many([p for p in pids if p != scope], nonblocking=True)
        self._previous = None
        return frozenset(
            (pid, t.id, tuple((f.function, f.file, f.line) for f in t.frames))
            for pid, dump in dumps.items()
            for t in dump.threads
        )

    @property
    def waiting_on(self) -> str | None:
        """What kept the latest reading from being a hang, in words (None: nothing read yet)."""
        return self._facts.get("waiting_on")  # type: ignore[return-value]

    def evidence(self) -> dict[str, object]:
        return {"rule": self.rule or "stall", "window_s": self.window_s,
                "readings": self.readings, "stack_samples": self.stack_samples, **self._facts}

