"""The plugin's glue over the engine's front door: the watch of a test, the capture of a hung
test, and the processes an owner left behind. ``session`` imports this module only once a test
starts a process or runs long enough to be watched, so a suite of short tests never loads the
engine's tracker, psutil or the diagnosis."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

import psutil

from .. import engine
from ..model import Role, Trigger
from ..render.files import write_report
from ..render.text import render_report
from .events import HangEvent, ProcessInfo
from .job import Hang, Job
from .settings import Settings, node_dir

NO_INTERRUPT_HERE = True  # the watcher's SIGALRM must not fail a phase from this code

# An owner that has just signalled its processes may not have waited for them to go: before
# reaping (leaks=reap, fail), wait for them up to LEFTOVER_GRACE_S, as long as one of them ended
# in the last LEFTOVER_QUIET_S.
LEFTOVER_GRACE_S = 0.5
LEFTOVER_QUIET_S = 0.1
# Children of pytest itself that serve the whole session and end with it: never listed, never
# reaped. The forkserver also serves the session but forks the workers, so it is only left off
# the lists: reaping a test's workers may take it along, and multiprocessing starts a new one.
SPARED_ROLES = (Role.RESOURCE_TRACKER, Role.WANDB_SERVICE, Role.WANDB_CORE)
UNLISTED_ROLES = (*SPARED_ROLES, Role.FORKSERVER)


def subtree(pid: int) -> engine.ProcessTracker:
    """A tracker of one process and its descendants (what a fixture started)."""
    tracker = engine.ProcessTracker(root_pid=pid)
    try:
        tracker.track(psutil.Process(pid))
    except psutil.Error:
        pass  # already gone: nothing to judge later
    tracker.poll()
    return tracker


def own_threads() -> set[int]:
    """The threads of pytest that hang detection leaves out: the plugin's own (named
    ``spawnhang-*``), and the main thread while it runs the plugin's code (a module that says
    ``NO_INTERRUPT_HERE``), where it waits for the test's processes on the plugin's behalf."""
    own = {t.native_id for t in threading.enumerate()
           if t.name.startswith("spawnhang") and t.native_id is not None}
    main = threading.main_thread()
    frame = sys._current_frames().get(main.ident or 0)
    while frame is not None:
        if frame.f_globals.get("NO_INTERRUPT_HERE"):
            own.add(main.native_id or 0)
            break
        frame = frame.f_back
    return own


def make_watch(job: Job, finished: Callable[[], bool]) -> engine.Watch:
    """The engine's watch over the test's processes and pytest's own threads (a test with no
    process is judged on its threads). Waits on pytest's parent are xdist's channel to its
    controller, not the test's."""
    stall = (engine.StallDetector(job.stall_s, scope=engine.Scope(
        os.getpid(), own_threads, frozenset({os.getppid()}))) if job.stall_s else None)
    return engine.Watch(job.tracker(), finished=finished, deadline=job.deadline, stall=stall)


def alive(tracker: engine.ProcessTracker, wait: bool = False) -> list[engine.Seen]:
    """The tracker's processes still alive; with ``wait``, after a grace for those that are
    ending. pytest's own session helpers are disowned, and left off the list."""
    tracker.poll()
    if not tracker.known():
        return []
    roles = _spare_helpers(tracker)
    return engine.settle(tracker, LEFTOVER_GRACE_S if wait else 0.0, LEFTOVER_QUIET_S,
                         keep=lambda s: roles.get(s.pid) not in UNLISTED_ROLES)


def _spare_helpers(tracker: engine.ProcessTracker) -> dict[int, Role]:
    """Disown pytest's own session helpers; returns the role of each direct child of pytest
    (the only processes that can be such helpers)."""
    roles = engine.roles_of(tracker, os.getpid())
    tracker.disown(frozenset(pid for pid, role in roles.items() if role in SPARED_ROLES))
    return roles


def reap(tracker: engine.ProcessTracker) -> list[int]:
    """The engine's reap, with its grace between SIGTERM and SIGKILL; returns survivors."""
    return engine.reap(tracker, engine.CaptureOptions.grace_s)


def describe(known: engine.Seen, owner: str | None = None) -> ProcessInfo:
    return ProcessInfo(known.pid, " ".join(known.cmdline) or known.name, owner)


def capture_hang(job: Job, settings: Settings, signal_name: str | None = None) -> Hang:
    """Dump, explain and reap the test's processes (never pytest itself), write the report.
    A "cancelled" trigger (with ``signal_name``) is pytest itself being interrupted."""
    trigger = Trigger(job.trigger)
    tracker = job.tracker()
    tracker.poll()
    _spare_helpers(tracker)
    reaped = len(tracker.alive())
    evidence = {"timeout_from": job.timeout_from}
    if signal_name is not None:
        evidence["signal"] = signal_name
    if job.watch is not None:
        evidence.update(job.watch.evidence(trigger))
    # pytest is the launcher: the engine dumps it from its own frames, and reaps only the tracker.
    report = engine.hang_report(
        trigger, ["pytest", job.item.nodeid], tracker, os.getpid(),
        engine.CaptureOptions(native=settings.native), started_wall=job.wall_started,
        duration_s=job.fired_at - job.started, timeout_s=job.timeout_s, stall_s=job.stall_s,
        evidence=evidence, include=(os.getpid(),))
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
    if trigger is Trigger.CANCELLED:
        why = f"pytest received {signal_name}"
    elif trigger is Trigger.DEADLINE:
        why = f"deadline {job.timeout_s:g}s from {job.timeout_from}"
    elif evidence.get("rule") == "polling without progress":
        why = f"polling without progress for {job.stall_s:g}s"
    else:
        why = str(evidence.get("rule", "stall"))
    summary = report.diagnosis.summary
    if "not_called_because" in evidence:  # why detection left it to the deadline
        summary += f"\ndetection did not call it: {evidence['not_called_because']}"
    message = (f"spawnhang: {report.verdict} after {report.duration_s:.1f}s ({why}); dumped and "
               f"reaped {reaped} process(es) of the test\n{summary}\nreport: {stacks}")
    headline = next((line for line in summary.splitlines() if line.strip()), "")
    return Hang(message, render_report(report), HangEvent(
        job.item.nodeid, str(trigger), headline, where, job.plan.marker.expect == "hang",
        trigger_to_report_s=round(report.timings["trigger_to_report_s"], 3)))
