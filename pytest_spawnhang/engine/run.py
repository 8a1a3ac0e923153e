"""Run a command to its end or its hang: launch, track, watch; on a hang the capture dumps,
labels, diagnoses and reaps (``capture.hang_report``). Nothing it started survives."""

from __future__ import annotations

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

from ..model import Failure, Report, Trigger, Verdict
from .capture import CaptureOptions, hang_report, new_report, reap_stragglers
from .stall import StallDetector
from .subreaper import become_subreaper
from .tree import ProcessTracker

POLL_S = 0.1
STDERR_TAIL_BYTES = 64 * 1024


@dataclass
class Watch:
    """Waits until the program ends, the deadline passes, the tree stalls, or someone cancels.
    ``wait`` runs on one thread; ``set_deadline``, ``stop_stall`` and ``cancel`` may be called
    from any other."""

    tracker: ProcessTracker
    finished: Callable[[], bool]
    deadline: float | None = None  # time.monotonic() value
    stall: StallDetector | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    signal_number: int | None = None  # the signal that cancelled the watch, if one did
    fired: Trigger | None = None  # a trigger from outside the tree (another node of a job)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self) -> Trigger:
        while True:
            if self.finished():
                return Trigger.EXIT
            if self.cancelled.is_set():
                return Trigger.CANCELLED
            if self.fired is not None:
                return self.fired
            now = time.monotonic()
            with self._lock:
                deadline, stall = self.deadline, self.stall
            if deadline is not None and now >= deadline:
                return Trigger.DEADLINE
            changes = self.tracker.poll()
            if stall is not None and stall.observe(self.tracker, changes, now):
                return Trigger.STALL
            pause = POLL_S if deadline is None else min(POLL_S, deadline - now)
            self.wake.wait(max(pause, 0.0))
            self.wake.clear()

    def set_deadline(self, deadline: float | None) -> None:
        with self._lock:
            self.deadline = deadline
        self.wake.set()

    def stop_stall(self) -> None:
        with self._lock:
            self.stall = None

    def fire(self, trigger: Trigger | str) -> None:
        """End the watch now with ``trigger`` (from any thread): the tree is dumped as a hang."""
        self.fired = Trigger(trigger)
        self.wake.set()

    def cancel(self, signal_number: int | None = None) -> None:
        self.signal_number = signal_number
        self.cancelled.set()
        self.wake.set()

    def evidence(self, trigger: Trigger) -> dict[str, object]:
        """What made ``trigger`` fire, beyond the rule and the deadline."""
        evidence: dict[str, object] = {}
        if self.signal_number is not None:
            evidence["signal"] = signal.Signals(self.signal_number).name
        if trigger is Trigger.STALL and self.stall is not None:
            evidence.update(self.stall.evidence())
        elif self.stall is not None and self.stall.waiting_on is not None:
            # Why detection did not call it first: "pid 42 tid 42: sleeps until 10:55:12, in 14 s"
            evidence["not_called_because"] = self.stall.waiting_on
        return evidence


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
    started_wall, t0 = time.time(), time.monotonic()
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
    if trigger is Trigger.EXIT:
        report = new_report(trigger, command, started_wall=started_wall, duration_s=fired - t0,
                            timeout_s=timeout_s, stall_s=stall_s)
        report.exit_code = proc.returncode
        report.stragglers, report.survivors = reap_stragglers(tracker, opts)
        if proc.returncode != 0:
            report.verdict = Verdict.FAIL.value
            tee.join(timeout=1.0)
            report.failure = failure_excerpt(tee.text())
    else:
        report = hang_report(trigger, command, tracker, proc.pid, opts,
                             started_wall=started_wall, duration_s=fired - t0,
                             timeout_s=timeout_s, stall_s=stall_s,
                             evidence=watch.evidence(trigger))
        proc.wait()
    report.timings["trigger_to_report_s"] = time.monotonic() - fired
    if watch.stall is not None:  # how near a healthy run came to the polling window
        report.timings["longest_quiet_s"] = round(watch.stall.longest_quiet_s, 3)
    tee.join(timeout=1.0)
    return report


def exit_status(report: Report) -> int:
    """The CLI's exit status for a report: 0, the program's status, 124 (hang), or 128 + the
    signal that interrupted the harness (130 for Ctrl-C, 143 for SIGTERM)."""
    if report.verdict == Verdict.EXIT:
        return 0
    if report.verdict == Verdict.HANG:
        return 124
    if report.verdict == Verdict.INTERRUPTED:
        return 128 + signal.Signals[report.evidence.get("signal", "SIGINT")]
    code = report.exit_code if report.exit_code is not None else 1
    return 128 - code if code < 0 else code
