"""The plugin's glue over the engine: trackers, the watch, the capture of a hung test, and the
processes an owner left behind. ``plugin_session`` imports this module only once a test starts
a process or runs long enough to be watched, so a suite of short tests never loads the engine.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

from .engine import CaptureOptions, Watch, capture
from .labels import assign_roles
from .model import ProcessRecord, Report
from .plugin import node_dir
from .plugin_job import direct_children
from .render.text import render_report
from .report_files import write_report
from .stall import StallDetector
from .tree import ProcessTracker, Seen
from .tree import reap as _reap

if TYPE_CHECKING:
    from .plugin import Settings
    from .plugin_job import Job

# An owner that has just signalled its processes may not have waited for them to go: before
# reaping (leaks=reap, fail), wait for them up to LEFTOVER_GRACE_S, as long as one of them ended
# in the last LEFTOVER_QUIET_S.
LEFTOVER_GRACE_S = 0.5
LEFTOVER_QUIET_S = 0.1
# Children of pytest itself that serve the whole session and end with it: never listed, never
# reaped. The forkserver also serves the session but forks the workers, so it is only left off
# the lists: reaping a test's workers may take it along, and multiprocessing starts a new one.
SPARED_ROLES = ("resource_tracker", "wandb_service", "wandb_core")
UNLISTED_ROLES = (*SPARED_ROLES, "forkserver")


@dataclass
class Tracker(ProcessTracker):
    """The engine's tracker, shared by the watcher (which polls) and the main thread (which
    hands processes over to fixtures), with a fast path for a test whose processes have all
    ended: then a poll is one read of /proc instead of a scan of every process."""

    lock: threading.Lock = field(default_factory=threading.Lock)

    def poll(self) -> int:
        with self.lock:
            if (self.root_pid == os.getpid() and not direct_children() - self.exclude
                    and all(s.gone for s in self.seen.values())):
                return 0
            return super().poll()

    def disown(self, pids: frozenset[int]) -> None:
        """Hand ``pids`` and their descendants over to another owner."""
        with self.lock:
            self.exclude = self.exclude | pids
            for pid, known in list(self.seen.items()):
                if pid in pids or self._excluded_ancestor(known.process):
                    del self.seen[pid]


def subtree(pid: int) -> Tracker:
    """A tracker of one process and its descendants (what a fixture started)."""
    tracker = Tracker(root_pid=pid)
    try:
        tracker.track(psutil.Process(pid))
    except psutil.Error:
        pass  # already gone: nothing to judge later
    tracker.poll()
    return tracker


@dataclass
class TreeStall(StallDetector):
    """The engine's stall detector over the test's processes, plus the test's own main thread:
    its CPU time, read per thread so that this watcher's polling does not count, is progress too
    (a test whose workers wait while it computes is not stalled). A test with no process of its
    own never stalls: a hang inside pytest alone is the deadline's to catch."""

    main_thread_id: int = field(default_factory=lambda: threading.main_thread().native_id)

    def observe(self, tracker: ProcessTracker, changes: int, now: float) -> bool:
        if not tracker.alive():
            self.quiet_since = None  # the window starts with the first process
            return False
        return super().observe(tracker, changes, now)

    def _cpu_times(self, tracker: ProcessTracker) -> dict[Hashable, float]:
        current = super()._cpu_times(tracker)
        main = next((t.user_time + t.system_time for t in psutil.Process().threads()
                     if t.id == self.main_thread_id), None)
        if main is not None:
            current["pytest main thread"] = main
        return current


def make_watch(tracker: Tracker, finished: Callable[[], bool], deadline: float | None,
               stall_s: float | None) -> Watch:
    return Watch(tracker, finished=finished, deadline=deadline,
                 stall=TreeStall(stall_s) if stall_s else None)


def alive(tracker: Tracker, wait: bool = False) -> list[Seen]:
    """The tracker's processes still alive; with ``wait``, after a grace for those that are
    ending. pytest's own session helpers are disowned, and left off the list."""
    tracker.poll()
    if not tracker.seen:
        return []
    roles = _spare_helpers(tracker)
    start = last_change = time.monotonic()
    count = None
    while True:
        tracker.wait_adopted()
        left = [s for s in tracker.alive() if roles.get(s.pid) not in UNLISTED_ROLES]
        now = time.monotonic()
        if len(left) != count:
            count, last_change = len(left), now
        # Processes kept on purpose (pools) do not end: stop once none has for a while.
        if (not left or not wait or now - start >= LEFTOVER_GRACE_S
                or now - last_change >= LEFTOVER_QUIET_S):
            return left
        time.sleep(0.02)
        tracker.poll()


def _spare_helpers(tracker: Tracker) -> dict[int, str]:
    """Disown pytest's own session helpers; returns the engine's role of each direct child of
    pytest (the only processes that can be such helpers)."""
    me = os.getpid()
    tracker.refresh()  # a process seen between fork and exec showed its parent's command line
    records = [ProcessRecord(pid=s.pid, ppid=s.ppid, cmdline=s.cmdline, name=s.name)
               for s in tracker.alive() if s.ppid == me]
    assign_roles(records, launcher_pid=me, env_ranks={})
    tracker.disown(frozenset(r.pid for r in records if r.role in SPARED_ROLES))
    return {r.pid: r.role for r in records}


def reap(tracker: ProcessTracker) -> list[int]:
    """The engine's reap, with its grace between SIGTERM and SIGKILL; returns survivors."""
    return _reap(tracker, CaptureOptions.grace_s)


def describe(known: Seen) -> dict[str, Any]:
    return {"pid": known.pid, "cmdline": " ".join(known.cmdline) or known.name}


@dataclass
class Hang:
    """What the main thread needs of a captured hang."""

    message: str  # the test's failure: the short diagnosis and where the report is
    text: str  # the whole report, for the test's report section
    event: dict[str, Any]  # the summary line's data, sent with the test's report


def capture_hang(job: Job, trigger: str, settings: Settings, signal_name: str | None = None
                 ) -> Hang:
    """Dump, explain and reap the test's processes (never pytest itself), write the report.
    ``trigger`` "cancelled" (with ``signal_name``) is pytest itself being interrupted."""
    tracker = job.tracker()
    tracker.poll()
    _spare_helpers(tracker)
    reaped = len(tracker.alive())
    report = Report(
        verdict="interrupted" if trigger == "cancelled" else "hang", trigger=trigger,
        command=["pytest", job.item.nodeid],
        duration_s=job.fired_at - job.started, cwd=os.getcwd(),
        started_at=_dt.datetime.fromtimestamp(job.wall_started, _dt.UTC)
        .isoformat(timespec="seconds"),
        timeout_s=job.timeout_s, stall_s=job.stall_s,
        evidence={"rule": trigger, "timeout_s": job.timeout_s, "timeout_from": job.timeout_from},
    )
    if signal_name is not None:
        report.evidence["signal"] = signal_name
    if trigger == "stall" and job.watch is not None and job.watch.stall is not None:
        report.evidence.update(job.watch.stall.evidence())
    # pytest is the launcher: the engine dumps it from its own frames, and reaps only the tracker.
    opts = CaptureOptions(native=settings.native)
    capture(report, tracker, os.getpid(), opts, include=(os.getpid(),))
    report.timings["trigger_to_report_s"] = time.monotonic() - job.fired_at
    directory = node_dir(settings.report_dir, job.item.nodeid)
    try:
        if directory.is_dir():  # an earlier run's report (folders are the fixture's runs)
            for stale in (p for p in directory.iterdir() if p.is_file()):
                stale.unlink()
        # A hang always gets the HTML picture: the summary line and JUnit point to it.
        where = str(write_report(report, directory).with_name("report.html"))
        stacks = f"{directory / 'report.txt'} (stacks), {where} (picture)"
    except OSError as exc:
        where = stacks = f"not written ({directory}: {exc.strerror or exc})"
    if trigger == "cancelled":
        why = f"pytest received {signal_name}"
    elif trigger == "deadline":
        why = f"deadline {job.timeout_s:g}s from {job.timeout_from}"
    else:
        why = f"no progress for {job.stall_s:g}s"
    summary = report.diagnosis.summary
    message = (f"spawnhang: {report.verdict} after {report.duration_s:.1f}s ({why}); dumped and "
               f"reaped {reaped} process(es) of the test\n{summary}\nreport: {stacks}")
    headline = next((line for line in summary.splitlines() if line.strip()), "")
    return Hang(message, render_report(report), {
        "kind": "hang", "nodeid": job.item.nodeid, "trigger": trigger, "summary": headline,
        "report": where, "expected": job.marker.expect == "hang",
        "trigger_to_report_s": round(report.timings["trigger_to_report_s"], 3)})
