"""The watcher thread: one for the whole session. It takes up a test once it has run
``WATCH_AFTER_S`` (short tests never meet it) and runs the engine's ``Watch`` on it. On a
deadline or stall it has the engine dump, explain and reap the test's processes, writes the
report, and interrupts the blocked main thread with SIGALRM, as pytest-timeout's signal method
does; the main thread then rewrites the hung phase's report (``session``)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from .events import HangEvent
from .job import Hang, Job, JobState
from .settings import Settings

# A test is watched once it has run this long, so the many short tests of a suite cost the
# watcher nothing; the deadline itself still counts from the test's start.
WATCH_AFTER_S = 0.1
# After the interrupt, how long the main thread may take to leave the hung test before the
# watcher gives up on it, reaps everything and exits pytest (as pytest-timeout's thread method).
UNRESPONSIVE_S = 10.0


class Watcher:
    def __init__(self, settings: Settings, abandon: Callable[[Job], None]) -> None:
        self.settings = settings
        self.abandon = abandon  # the main thread never came back: report, reap, exit
        self.job: Job | None = None  # the running test's, set and cleared by the main thread
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.handler = self._interrupt  # one bound method, to compare with getsignal's
        self.previous_handler: Any = None  # SIGALRM's before ours, restored at the end

    def arm(self, job: Job) -> None:
        """Install our SIGALRM handler (again: a test may have put its own), and the thread.
        The handler stays between tests, where it does nothing; restored by ``stop``."""
        if not job.watchable or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.signal(signal.SIGALRM, self.handler)
        if self.previous_handler is None:
            self.previous_handler = previous
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="spawnhang-watcher",
                                           daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.previous_handler is not None and signal.getsignal(signal.SIGALRM) == self.handler:
            signal.signal(signal.SIGALRM, self.previous_handler)

    def _loop(self) -> None:
        while not self.stopping.wait(WATCH_AFTER_S / 2):
            job = self.job
            if (job is not None and job.watchable and job.state is JobState.IDLE
                    and time.monotonic() - job.started >= WATCH_AFTER_S):
                self._watch(job)

    def _watch(self, job: Job) -> None:
        from .capture import capture_hang, make_watch, reap  # the engine comes in here

        with job.lock:
            if job.ended:
                return
            job.watch = make_watch(job, lambda: job.ended)
            job.advance(JobState.WATCHED)
        try:
            trigger = job.watch.wait()
            with job.lock:
                if trigger not in ("deadline", "stall") or not job.advance(JobState.FIRED):
                    return
                job.trigger, job.fired_at = str(trigger), time.monotonic()
            try:
                job.hang = capture_hang(job, self.settings)
            except Exception as exc:  # never leave the test hung because the capture broke
                reap(job.tracker())
                message = f"spawnhang: hang ({trigger}); capturing it failed: {exc!r}"
                job.hang = Hang(message, message, HangEvent(
                    job.item.nodeid, str(trigger), message, "not written",
                    job.plan.marker.expect == "hang"))
            finally:
                job.advance(JobState.CAPTURED)
                job.captured.set()
            # Only while the handler is ours: the default action of SIGALRM ends the process.
            if signal.getsignal(signal.SIGALRM) == self.handler:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
            if not job.responded.wait(UNRESPONSIVE_S):
                self.abandon(job)
        finally:
            job.released.set()

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        """SIGALRM handler, in the main thread: fail the hung phase, if the main thread is where
        pytest's runner catches what a phase raises (and not in this plugin's own code)."""
        __tracebackhide__ = True
        job = self.job
        if (job is not None and not job.ended and _inside_a_phase(frame)
                and job.advance(JobState.INTERRUPTED)):
            pytest.fail(job.hang.message, pytrace=False)


def _inside_a_phase(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside ``CallInfo.from_call``'s call of a phase (where an
    exception becomes the phase's failure), and outside this plugin's own code."""
    while frame is not None:
        if frame.f_globals.get("NO_INTERRUPT_HERE"):
            return False
        if frame.f_back is not None and frame.f_back.f_code is _FROM_CALL:
            return True
        frame = frame.f_back
    return False


# The plugin's own modules that run in the main thread around the phases say so themselves
# (a module-level flag, so that no list of module names can go stale); an interrupt landing in
# their code would fail the wrong thing.
NO_INTERRUPT_HERE = True
_FROM_CALL = pytest.CallInfo.from_call.__func__.__code__  # type: ignore[attr-defined]
