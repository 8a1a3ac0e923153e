"""The working half of ``pytest --spawnhang``, registered by the entry module only when enabled.

Per test (a ``Job``, planned by ``settings.plan_test``): the pytest process is the launcher, so
its new descendants are the test's processes. The ``Watcher`` thread takes up a test that runs
long enough; on a hang the report of the phase that hung is rewritten to carry the spawnhang
verdict, whether the watcher's interrupt or the end of the reaped workers got the main thread
out first.

Per owner (a test, or a fixture above function scope): processes that outlive their owner are
warned about, reaped or failed (``leaks``), and at the end of the session every descendant still
alive is reaped, so that pytest always exits.

What the terminal summary needs travels as typed events (``events``): directly without xdist;
from an xdist worker, as dicts attached to its teardown reports (``report.spawnhang``) and, at
session end, in its ``workeroutput``.
Short tests pay a system call or a read of /proc and a few hook calls each; the engine's
tracker and psutil come in only when a test starts a process or runs long enough to be watched.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from .. import engine
from .events import Event, SessionEvent, to_dict
from .job import Job, JobState
from .leaks import Leaks
from .settings import Settings, plan_test
from .watcher import UNRESPONSIVE_S, Watcher

if TYPE_CHECKING:
    from .summary import Summary

NO_INTERRUPT_HERE = True  # the watcher's SIGALRM must not fail a phase from this code
JOB_KEY = pytest.StashKey[Job]()
TIMEOUT_KEY = pytest.StashKey[float]()  # pytest-timeout's deadline, handed over by its hook


class SessionPlugin:
    def __init__(self, config: pytest.Config, settings: Settings, summary: Summary | None
                 ) -> None:
        self.config = config
        self.settings = settings
        self.summary = summary  # None in an xdist worker: its events go to the controller
        self.watcher = Watcher(settings, self._abandon)
        self.baseline: frozenset[int] = frozenset()  # children before the session: not ours
        self.children: frozenset[int] = frozenset()  # children at the last test's end
        self.leaks = Leaks(settings.leaks, self.pending_append)
        self.failures: list[str] = []  # owners to fail at the end of the teardown (leaks=fail)
        self.pending: list[Event] = []  # events not yet handed on
        self.previous_cancel: dict[int, Any] = {}  # SIGINT's and SIGTERM's before ours

    @property
    def job(self) -> Job | None:
        return self.watcher.job

    def pending_append(self, event: Event) -> None:
        self.pending.append(event)

    def pytest_sessionstart(self) -> None:
        engine.become_subreaper()
        self.baseline = self.children = engine.direct_children()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous_cancel[sig] = signal.signal(sig, self._cancel)
            # A process forked from pytest (a fork-started pool worker) is not pytest: it gets
            # the signals' previous meaning back at once, before anyone can signal it.
            os.register_at_fork(after_in_child=self._restore_cancel)

    @pytest.hookimpl(trylast=True)  # after pytest's own teardown of what is still set up
    def pytest_sessionfinish(self) -> None:
        self.watcher.stop()
        self._restore_cancel()
        self.leaks.list_suspects(final=True)
        events, self.pending = self.pending + self._sweep(), []
        if self.summary is not None:
            self.summary.events.extend(events)
        else:
            output = self.config.workeroutput  # type: ignore[attr-defined]
            output["spawnhang"] = [to_dict(e) for e in events]

    def _sweep(self) -> list[Event]:
        """Reap every descendant still alive, so that pytest can exit."""
        if not engine.direct_children() - self.baseline:
            return []
        from .capture import alive, describe, reap

        tracker = engine.ProcessTracker(root_pid=os.getpid(), exclude=self.baseline)
        left = alive(tracker)
        if not left:
            return []
        survivors = reap(tracker)
        return [SessionEvent([describe(s, self.leaks.owner_of.get(s.pid)) for s in left],
                             survivors)]

    # -- one test ----------------------------------------------------------------------------

    def _start(self, item: pytest.Item) -> str | None:
        """Start the test's job; returns what is wrong with its marker, if anything."""
        pytest_timeout = item.stash.get(TIMEOUT_KEY, None)
        if pytest_timeout is not None:
            del item.stash[TIMEOUT_KEY]
        plan = plan_test(self.settings, item.get_closest_marker("spawnhang"), pytest_timeout)
        job = Job(item, plan, self.children)
        item.stash[JOB_KEY] = self.watcher.job = job
        self.watcher.arm(job)
        return plan.error

    def _end(self, job: Job) -> str | None:
        """Stop watching; judge what the test left behind. Returns a failure message or None."""
        with job.lock:
            job.ended = True
            watched = job.watch is not None
        if watched:
            job.watch.wake.set()  # type: ignore[union-attr]
            job.responded.set()
            job.released.wait()
        self.watcher.job = None
        self.leaks.list_suspects(final=False)
        if job.advance(JobState.APPLIED):  # it fired as the test ended: no report left to fail
            self.pending.append(job.hang.event)  # type: ignore[union-attr]
        if not job.tracked and not job.exclude and not engine.has_children():
            self.children = frozenset()
            return None  # the usual test, in a session without processes: nothing to read
        self.children = engine.direct_children()
        if not job.tracked and not self.children - job.exclude:
            return None  # it started no process, or none is left
        message = self.leaks.judge(job.item.nodeid, job.tracker(), job.plan.leaks)
        self.children = engine.direct_children()
        return message

    # -- the hooks of each test ----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Start the job. Not a wrapper, so that a bad marker fails the setup inside every
        plugin's setup wrapper (as a skip marker does), and their teardowns find what their
        setups left."""
        error = self._start(item)
        if error is not None:
            pytest.fail(error, pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Any:
        """After the test's own teardown: end the job and judge its leftovers; owners that
        leaked under leaks=fail fail the teardown."""
        job = item.stash.get(JOB_KEY, None)
        try:
            result = yield
        except BaseException:
            if job is not None:
                self._end(job)
            self.failures.clear()  # the teardown fails anyway; the leftovers are in the summary
            raise
        if job is not None and (message := self._end(job)) is not None:
            self.failures.append(message)
        if self.failures:
            message, self.failures = "\n".join(self.failures), []
            pytest.fail(message, pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        job = item.stash.get(JOB_KEY, None)
        if job is None:
            return report
        if job.fired and job.state is not JobState.APPLIED:
            job.captured.wait()  # the capture may still be reaping
            self._apply_hang(job, report)
            job.responded.set()
        elif call.when == "call" and job.plan.marker.expect == "hang" and report.passed:
            watched = (f"{job.timeout_s:g}s deadline from {job.timeout_from}"
                       if job.timeout_s is not None else f"{job.stall_s:g}s stall window")
            report.outcome = "failed"
            report.longrepr = (f"spawnhang: expected a hang, but the test ended after "
                               f"{call.duration:.1f}s ({watched})")
        if call.when == "teardown":
            del item.stash[JOB_KEY]  # the job is over: do not keep one per test of the session
            if self.pending:
                self._hand_on(report)
        return report

    def _hand_on(self, report: pytest.TestReport) -> None:
        """Events go to the summary, or from an xdist worker with the report (xdist serialises
        its attributes) to the controller's summary."""
        if self.summary is not None:
            self.summary.events.extend(self.pending)
        else:
            report.spawnhang = [to_dict(e) for e in self.pending]  # type: ignore[attr-defined]
        self.pending = []

    def _apply_hang(self, job: Job, report: pytest.TestReport) -> None:
        job.advance(JobState.APPLIED)
        hang = job.hang
        hang.event.trigger_to_failure_s = round(time.monotonic() - job.fired_at, 3)
        self.pending.append(hang.event)
        properties = [("spawnhang_verdict", "hang"), ("spawnhang_report", hang.event.report)]
        job.item.user_properties.extend(properties)  # for later reports: JUnit reads teardown's
        report.user_properties.extend(properties)
        report.sections.append(("spawnhang report", hang.text))
        if job.plan.marker.expect == "hang":
            report.outcome, report.longrepr = "passed", None
        else:
            report.outcome, report.longrepr = "failed", hang.message

    def _restore_cancel(self) -> None:
        for sig, previous in self.previous_cancel.items():
            if signal.getsignal(sig) == self._cancel:
                signal.signal(sig, signal.SIG_DFL if previous is None else previous)

    def _cancel(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM handler (Ctrl-C, a cancelled CI job): the running test's processes
        are dumped, explained and reaped as for a hang, then pytest stops as for Ctrl-C, and
        the session's end reaps whatever is left, so that no artefact is lost and no process
        outlives pytest."""
        job = self.job
        if job is not None:
            with job.lock:
                capture = job.advance(JobState.FIRED)
                if capture:
                    job.trigger, job.fired_at = "cancelled", time.monotonic()
            if capture:
                from .capture import capture_hang

                job.hang = capture_hang(job, self.settings, signal.Signals(signum).name)
                job.advance(JobState.CAPTURED)
                job.advance(JobState.APPLIED)  # no test report will carry it: the summary does
                self.pending.append(job.hang.event)
        raise KeyboardInterrupt(f"spawnhang: pytest received {signal.Signals(signum).name}")

    def _abandon(self, job: Job) -> None:
        """The main thread did not come back after the interrupt (it swallowed it, or sits in
        C code): say so, reap everything and exit rather than hang the CI job."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:  # or the words would go to a capture file that is never read
            capman.suspend_global_capture(in_=True)
        terminal = self.config.get_terminal_writer()
        terminal.line(f"\n{job.item.nodeid}: {job.hang.message}")
        terminal.line(f"spawnhang: the test did not respond to the interrupt within "
                      f"{UNRESPONSIVE_S:g}s; reaping every process left and exiting.")
        terminal.flush()
        self._sweep()
        os._exit(1)

    # -- pytest-timeout: take its timer over -----------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool:
        """pytest-timeout's deadline becomes ours (unless the spawnhang marker sets one);
        returning True keeps pytest-timeout's own timer from starting."""
        job = item.stash.get(JOB_KEY, None)
        if job is None:  # called before the setup: the deadline covers the whole test
            item.stash[TIMEOUT_KEY] = settings.timeout
        elif not job.ended and job.plan.marker.timeout_s is None:  # func_only: from the call on
            job.set_deadline(settings.timeout, "pytest-timeout")
            job.func_only = True
            self.watcher.arm(job)
        return True

    @pytest.hookimpl(optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> bool:
        """Ends a func_only deadline (set at the call) after the call. pytest-timeout also
        cancels on every failure (pytest_exception_interact): otherwise the teardown stays
        watched, and debuggers are seen through pytest_enter_pdb instead."""
        job = item.stash.get(JOB_KEY, None)
        if job is not None and job.func_only:
            job.set_deadline(None, None)
        return True

    def pytest_enter_pdb(self) -> None:
        if self.job is not None:
            self.job.stop_timers()

    # -- fixtures above function scope own what they start ----------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: pytest.FixtureRequest) -> Any:
        if fixturedef.scope == "function":
            return (yield)
        before = engine.direct_children()
        try:
            return (yield)
        finally:
            new = self.leaks.fixture_started(fixturedef, engine.direct_children() - before)
            if new and self.job is not None:
                self.job.disown(new)

    def pytest_fixture_post_finalizer(self, fixturedef: Any) -> None:
        self.failures.extend(self.leaks.fixture_finalized(fixturedef))
