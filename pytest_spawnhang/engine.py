"""The engine: launch, track, watch, and on a hang dump, label, diagnose and reap.

It knows nothing of pytest; the CLI and the pytest plugin are front ends over ``run_command``,
``Watch`` and ``capture``. Data flows one way: tracked processes -> dumps -> records ->
diagnosis -> Report.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from .diagnosis import diagnose
from .dump import dump_many
from .labels import assign_roles
from .model import Failure, ProcessRecord, Report, Straggler
from .stall import StallDetector
from .subreaper import become_subreaper
from .tree import ProcessTracker, proc_status, reap

POLL_S = 0.1
STDERR_TAIL_BYTES = 64 * 1024


@dataclass
class CaptureOptions:
    native: bool = False
    with_locals: bool = False
    grace_s: float = 1.0  # between SIGTERM and SIGKILL
    straggler_wait_s: float = 1.0  # how long processes may outlive a clean exit
    # Called between the dump and the reap: a job's node waits there for the other nodes' dumps,
    # since reaping its ranks breaks theirs.
    after_dump: Callable[[Report], None] | None = None


@dataclass
class Watch:
    """Waits until the program ends, the deadline passes, the tree stalls, or someone cancels."""

    tracker: ProcessTracker
    finished: Callable[[], bool]
    deadline: float | None = None  # time.monotonic() value
    stall: StallDetector | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    signal_number: int | None = None  # the signal that cancelled the watch, if one did
    fired: str | None = None  # a trigger from outside the tree (another node of a job)

    def wait(self) -> str:
        while True:
            if self.finished():
                return "exit"
            if self.cancelled.is_set():
                return "cancelled"
            if self.fired is not None:
                return self.fired
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                return "deadline"
            changes = self.tracker.poll()
            if self.stall is not None and self.stall.observe(self.tracker, changes, now):
                return "stall"
            pause = POLL_S if self.deadline is None else min(POLL_S, self.deadline - now)
            self.wake.wait(max(pause, 0.0))
            self.wake.clear()

    def fire(self, trigger: str) -> None:
        """End the watch now with ``trigger`` (from any thread): the tree is dumped as a hang."""
        self.fired = trigger
        self.wake.set()

    def cancel(self, signal_number: int | None = None) -> None:
        self.signal_number = signal_number
        self.cancelled.set()
        self.wake.set()


def snapshot(
    tracker: ProcessTracker, launcher_pid: int, opts: CaptureOptions, include: tuple[int, ...] = ()
) -> list[ProcessRecord]:
    """Dump every live tracked process (and ``include``), and record the ones that ended."""
    tracker.poll()  # the tree may have grown since the watch last looked
    tracker.refresh()
    alive = tracker.alive()
    pids = list(dict.fromkeys([*include, *(s.pid for s in alive)]))
    dumps = dump_many(pids, native=opts.native, with_locals=opts.with_locals)
    records = []
    for pid in pids:
        state, wchan, cpu = proc_status(pid)
        known = tracker.seen.get(pid)
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


def capture(
    report: Report,
    tracker: ProcessTracker,
    launcher_pid: int,
    opts: CaptureOptions,
    include: tuple[int, ...] = (),
) -> Report:
    """Fill ``report`` for a hang: dump, label, diagnose, then reap the whole tree."""
    t0 = time.monotonic()
    report.processes = snapshot(tracker, launcher_pid, opts, include)
    t1 = time.monotonic()
    report.diagnosis = diagnose(report)
    t2 = time.monotonic()
    report.timings.update(dump_s=t1 - t0, diagnose_s=t2 - t1)
    if opts.after_dump is not None:
        opts.after_dump(report)  # records its own time
    t3 = time.monotonic()
    report.survivors = reap(tracker, opts.grace_s)
    report.timings["reap_s"] = time.monotonic() - t3
    return report


def reap_stragglers(tracker: ProcessTracker, opts: CaptureOptions) -> tuple[list[Straggler],
                                                                             list[int]]:
    """After the program ended: give leftovers a moment to exit, then reap and list them."""
    deadline = time.monotonic() + opts.straggler_wait_s
    while time.monotonic() < deadline:
        tracker.poll()
        tracker.wait_adopted()
        if not tracker.alive():
            return [], []
        time.sleep(0.05)
    tracker.refresh()
    left = [Straggler(s.pid, s.cmdline) for s in tracker.alive()]
    records = [ProcessRecord(pid=s.pid, ppid=0, cmdline=s.cmdline) for s in left]
    assign_roles(records, launcher_pid=-1, env_ranks={})
    for straggler, rec in zip(left, records, strict=True):
        straggler.role = rec.role
    return left, reap(tracker, opts.grace_s)


class StderrTee(threading.Thread):
    """Passes the program's stderr through unchanged, keeping its tail for a failure excerpt."""

    def __init__(self, stream) -> None:
        super().__init__(name="spawnhang-stderr", daemon=True)
        self.stream = stream
        self.tail = bytearray()

    def run(self) -> None:
        out = sys.stderr.buffer
        while chunk := os.read(self.stream.fileno(), 65536):
            out.write(chunk)
            out.flush()
            self.tail += chunk
            del self.tail[:-STDERR_TAIL_BYTES]

    def text(self) -> str:
        return self.tail.decode("utf-8", "replace")


_RANK_ERROR = re.compile(r"-- Process (\d+) terminated with the following error:")
_RANK_EXIT = re.compile(r"process (\d+) terminated with (?:exit code|signal)")


def failure_excerpt(stderr: str, lines: int = 25) -> Failure | None:
    """The last traceback in the program's stderr, and the rank torch names for it."""
    if not stderr.strip():
        return None
    start = stderr.rfind("Traceback (most recent call last)")
    rank_match = _RANK_ERROR.search(stderr) or _RANK_EXIT.search(stderr)
    if rank_match and rank_match.start() < start:
        start = rank_match.start()  # keep torch's line naming the rank
    body = stderr[start:] if start >= 0 else stderr
    excerpt = "\n".join(body.strip().splitlines()[-lines:])
    return Failure(excerpt=excerpt, rank=int(rank_match.group(1)) if rank_match else None)


def run_command(
    command: list[str],
    *,
    timeout_s: float | None,
    stall_s: float | None = None,
    opts: CaptureOptions | None = None,
    on_watch: Callable[[Watch], None] | None = None,
) -> Report:
    """Run ``command`` to its end or its hang, and return the report; nothing it started
    survives. ``on_watch`` receives the Watch so a front end can cancel it (signals)."""
    opts = opts or CaptureOptions()
    become_subreaper()
    existing = frozenset(p.pid for p in psutil.Process().children(recursive=True))
    tracker = ProcessTracker(root_pid=os.getpid(), exclude=existing)
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    tee = StderrTee(proc.stderr)
    tee.start()
    watch = Watch(
        tracker,
        finished=lambda: proc.poll() is not None,
        deadline=None if timeout_s is None else t0 + timeout_s,
        stall=StallDetector(stall_s) if stall_s else None,
    )
    threading.Thread(target=lambda: (proc.wait(), watch.wake.set()), daemon=True).start()
    if on_watch is not None:
        on_watch(watch)
    trigger = watch.wait()
    fired = time.monotonic()
    report = Report(
        verdict="exit", trigger=trigger, command=list(command), duration_s=fired - t0,
        started_at=started_at, cwd=os.getcwd(), timeout_s=timeout_s, stall_s=stall_s,
    )
    if trigger == "exit":
        report.exit_code = proc.returncode
        report.stragglers, report.survivors = reap_stragglers(tracker, opts)
        if proc.returncode != 0:
            report.verdict = "fail"
            tee.join(timeout=1.0)
            report.failure = failure_excerpt(tee.text())
    else:
        report.verdict = "interrupted" if trigger == "cancelled" else "hang"
        report.evidence = {"rule": trigger, "timeout_s": timeout_s}
        if watch.signal_number is not None:
            report.evidence["signal"] = signal.Signals(watch.signal_number).name
        if watch.stall is not None and trigger == "stall":
            report.evidence.update(watch.stall.evidence())
        capture(report, tracker, proc.pid, opts)
        proc.wait()
    report.timings["trigger_to_report_s"] = time.monotonic() - fired
    tee.join(timeout=1.0)
    return report


def exit_status(report: Report) -> int:
    """The CLI's exit status for a report: 0, the program's status, 124 (hang), or 128 + the
    signal that interrupted the harness (130 for Ctrl-C, 143 for SIGTERM)."""
    if report.verdict == "exit":
        return 0
    if report.verdict == "hang":
        return 124
    if report.verdict == "interrupted":
        return 128 + signal.Signals[report.evidence.get("signal", "SIGINT")]
    code = report.exit_code if report.exit_code is not None else 1
    return 128 - code if code < 0 else code
