"""A hang's report, built the same way for every front end: dump every process of the tree,
label it, diagnose, then reap. ``hang_report`` is the one place a ``Report`` of a hang (or of a
snapshot) is assembled; ``exit_report`` the one for a program that ended."""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from ..diagnosis import diagnose
from ..model import ProcessRecord, Report, Role, Straggler, Trigger
from .dump import dump_many
from .kernel import native_stack
from .labels import assign_roles
from .tree import ProcessTracker, proc_status, reap, settle
from .waitinfo import NATIVE_STACK_TIMEOUT_S, attach_waits, is_python, native_threads, read_waits


@dataclass
class CaptureOptions:
    native: bool = False
    with_locals: bool = False
    grace_s: float = 1.0  # between SIGTERM and SIGKILL
    straggler_wait_s: float = 1.0  # how long processes may outlive a clean exit
    # Called between the dump and the reap: a job's node waits there for the other nodes' dumps,
    # since reaping its ranks breaks theirs.
    after_dump: Callable[[Report], None] | None = None


def new_report(trigger: Trigger, command: Sequence[str], *, started_wall: float,
               duration_s: float, timeout_s: float | None = None,
               stall_s: float | None = None) -> Report:
    """The report's frame: verdict from the trigger, the start in UTC (as the schema says). The
    report holds plain strings, not enum members: it is data that pickles, serialises and
    travels (xdist's execnet refuses str subclasses)."""
    started_at = _dt.datetime.fromtimestamp(started_wall, _dt.UTC).isoformat(timespec="seconds")
    return Report(verdict=trigger.verdict.value, trigger=trigger.value, command=list(command),
                  duration_s=duration_s, started_at=started_at, cwd=os.getcwd(),
                  timeout_s=timeout_s, stall_s=stall_s)


def hang_report(trigger: Trigger, command: Sequence[str], tracker: ProcessTracker,
                launcher_pid: int, opts: CaptureOptions, *, started_wall: float,
                duration_s: float, timeout_s: float | None = None, stall_s: float | None = None,
                evidence: dict[str, Any] | None = None, include: tuple[int, ...] = (),
                reap_tree: bool = True) -> Report:
    """Dump, label and diagnose the tree; then, with ``reap_tree``, reap it. ``evidence`` is
    what made the trigger fire, beyond the rule and the deadline."""
    report = new_report(trigger, command, started_wall=started_wall, duration_s=duration_s,
                        timeout_s=timeout_s, stall_s=stall_s)
    if trigger is not Trigger.ATTACH:
        report.evidence = {"rule": str(trigger), "timeout_s": timeout_s, **(evidence or {})}
    t0 = time.monotonic()
    report.processes = snapshot(tracker, launcher_pid, opts, include, report.timings)
    t1 = time.monotonic()
    report.diagnosis = diagnose(report)
    t2 = time.monotonic()
    report.timings.update(dump_s=t1 - t0, diagnose_s=t2 - t1)
    if opts.after_dump is not None:
        opts.after_dump(report)  # records its own time
    if reap_tree:
        t3 = time.monotonic()
        report.survivors = reap(tracker, opts.grace_s)
        report.timings["reap_s"] = time.monotonic() - t3
    return report


def snapshot(
    tracker: ProcessTracker, launcher_pid: int, opts: CaptureOptions, include: tuple[int, ...] = (),
    timings: dict[str, float] | None = None,
) -> list[ProcessRecord]:
    """Read the waits of every live tracked process (and ``include``), dump them, and record
    the ones that ended. ``timings`` gets the seconds spent reading the waits."""
    timings = {} if timings is None else timings
    tracker.poll()  # the tree may have grown since the watch last looked
    tracker.refresh()
    alive = tracker.alive()
    pids = list(dict.fromkeys([*include, *(s.pid for s in alive)]))
    t0 = time.monotonic()
    waits = read_waits(pids)  # before any dump: ptrace interrupts sleeps and loses deadlines
    t1 = time.monotonic()
    foreign = {pid for pid in pids if not is_python(pid)}
    dumps = dump_many(pids, native=opts.native, with_locals=opts.with_locals,
                      not_python=foreign,
                      unwind=lambda pid: native_stack(pid, NATIVE_STACK_TIMEOUT_S))
    timings.update(waits_s=t1 - t0)
    records = []
    for pid in pids:
        state, wchan, cpu = proc_status(pid)
        known = tracker.get(pid)
        try:
            cmdline = known.cmdline if known else psutil.Process(pid).cmdline()
            proc = known.process if known else psutil.Process(pid)
            ppid, name, ctime = proc.ppid(), proc.name(), proc.create_time()
        except psutil.Error:
            cmdline, ppid, name, ctime = (known.cmdline if known else []), 0, "", 0.0
        dump = dumps[pid]
        records.append(ProcessRecord(
            pid=pid, ppid=ppid, cmdline=cmdline, name=name, create_time=ctime, state=state,
            wchan=wchan, cpu_s=cpu, threads=dump.threads, dump_error=dump.error,
        ))
        attach_waits(records[-1], waits.get(pid))
        native_threads(records[-1], dump.native)
    for known in tracker.ended():
        if known.pid not in dumps:
            records.append(ProcessRecord(
                pid=known.pid, ppid=known.ppid, cmdline=known.cmdline, name=known.name,
                create_time=known.process.create_time(), state="exited",
            ))
    assign_roles(records, launcher_pid, _env_ranks(pids))
    return records


def _env_ranks(pids: list[int]) -> dict[int, int]:
    ranks = {}
    for pid in pids:
        try:
            value = psutil.Process(pid).environ().get("RANK")
        except psutil.Error:
            continue
        if value is not None and value.isdigit():
            ranks[pid] = int(value)
    return ranks


def roles_of(tracker: ProcessTracker, parent_pid: int) -> dict[int, Role]:
    """The role of each live child of ``parent_pid`` in the tree, told from its command line
    alone (no dump): how a front end recognises helpers such as multiprocessing's resource
    tracker."""
    tracker.refresh()  # a process seen between fork and exec showed its parent's command line
    records = [ProcessRecord(pid=s.pid, ppid=s.ppid, cmdline=s.cmdline, name=s.name)
               for s in tracker.alive() if s.ppid == parent_pid]
    assign_roles(records, launcher_pid=parent_pid, env_ranks={})
    return {r.pid: Role(r.role) for r in records}


def reap_stragglers(tracker: ProcessTracker, opts: CaptureOptions) -> tuple[list[Straggler],
                                                                             list[int]]:
    """After the program ended: give leftovers a moment to exit, then reap and list them."""
    if not settle(tracker, opts.straggler_wait_s):
        return [], []
    tracker.refresh()
    left = [Straggler(s.pid, s.cmdline) for s in tracker.alive()]
    records = [ProcessRecord(pid=s.pid, ppid=0, cmdline=s.cmdline) for s in left]
    assign_roles(records, launcher_pid=-1, env_ranks={})
    for straggler, rec in zip(left, records, strict=True):
        straggler.role = rec.role
    return left, reap(tracker, opts.grace_s)
