"""The working half of ``pytest --spawnhang``, registered by ``plugin.py`` only when enabled.

Per test (a ``Job``): the pytest process is the launcher, so its new descendants are the test's
processes. One watcher thread for the whole session takes up a test once it has run
``WATCH_AFTER_S`` and runs the engine's ``Watch`` on it; short tests never meet it. On a deadline
or stall it has the engine dump, explain and reap the test's processes, writes the report, and
interrupts the blocked main thread with SIGALRM, as pytest-timeout's signal method does. The
report of the phase that hung is then rewritten to carry the spawnhang verdict, whether the
interrupt or the end of the reaped workers got the main thread out first.

Per owner (a test, or a fixture above function scope): processes that outlive their owner are
warned about, reaped or failed (``--spawnhang-leaks``, kept in ``plugin_leaks``), and at the end of
the session every descendant still alive is reaped, so that pytest always exits.

What the terminal summary needs travels as plain dicts ("events"), to ``plugin_summary``: directly
without xdist; from an xdist worker attached to its teardown reports (``report.spawnhang``, which
xdist serialises with the report) and, at session end, in its ``workeroutput``.

The engine (``plugin_watch``) is imported only when a test starts a process or runs long enough
to be watched. A suite of short tests pays, per test, for a system call or a read of /proc and a
handful of hook calls (one setup hook, one teardown wrapper, the report wrapper of each phase);
psutil is not imported until then either.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from .plugin import Marker, Settings
from .plugin_job import Job, direct_children, has_children
from .plugin_leaks import Leaks
from .subreaper import become_subreaper

if TYPE_CHECKING:
    from .plugin_summary import Summary

# A test is watched once it has run this long, so the many short tests of a suite cost the
# watcher nothing; the deadline itself still counts from the test's start.
WATCH_AFTER_S = 0.1
# After the interrupt, how long the main thread may take to leave the hung test before the
# watcher gives up on it, reaps everything and exits pytest (as pytest-timeout's thread method).
UNRESPONSIVE_S = 10.0

JOB_KEY = pytest.StashKey["Job"]()
TIMEOUT_KEY = pytest.StashKey[float]()  # pytest-timeout's deadline, handed over by its hook


class SessionPlugin:
    def __init__(self, config: pytest.Config, settings: Settings, summary: Summary | None
                 ) -> None:
        self.config = config
        self.settings = settings
        self.summary = summary  # None in an xdist worker: its events go to the controller
        self.job: Job | None = None
        self.handler = self._interrupt  # one bound method, to compare with getsignal's
        self.previous_handler: Any = None  # SIGALRM's before ours, restored at the end
        self.watcher: threading.Thread | None = None
        self.stopping = threading.Event()
        self.baseline: frozenset[int] = frozenset()  # children before the session: not ours
        self.children: frozenset[int] = frozenset()  # children at the last test's end
        self.leaks = Leaks(settings.leaks, self._emit)
        self.failures: list[str] = []  # owners to fail at the end of the teardown (leaks=fail)
        self.pending: list[dict[str, Any]] = []  # events not yet handed on
        self.previous_cancel: dict[int, Any] = {}  # SIGINT's and SIGTERM's before ours

    # -- session ---------------------------------------------------------------------------

    def pytest_sessionstart(self) -> None:
        become_subreaper()
        self.baseline = self.children = direct_children()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous_cancel[sig] = signal.signal(sig, self._cancel)
            # A process forked from pytest (a fork-started pool worker) is not pytest: it gets
            # the signals' previous meaning back at once, before anyone can signal it.
            os.register_at_fork(after_in_child=self._restore_cancel)

    @pytest.hookimpl(trylast=True)  # after pytest's own teardown of what is still set up
    def pytest_sessionfinish(self) -> None:
        self.stopping.set()
        if self.previous_handler is not None and signal.getsignal(signal.SIGALRM) == self.handler:
            signal.signal(signal.SIGALRM, self.previous_handler)
        self._restore_cancel()
        self.leaks.list_suspects(final=True)
        events, self.pending = self.pending + self._sweep(), []
        if self.summary is not None:
            self.summary.events.extend(events)
        else:
            self.config.workeroutput["spawnhang"] = events  # type: ignore[attr-defined]

    def _sweep(self) -> list[dict[str, Any]]:
        """Reap every descendant still alive, so that pytest can exit."""
        if not direct_children() - self.baseline:
            return []
        from . import plugin_watch as watch

        tracker = watch.Tracker(root_pid=os.getpid(), exclude=self.baseline)
        left = watch.alive(tracker)
        if not left:
            return []
        survivors = watch.reap(tracker)
        return [{"kind": "session", "survivors": survivors, "processes": [
            {**watch.describe(s), "owner": self.leaks.owner_of.get(s.pid)} for s in left]}]

    # -- one test ----------------------------------------------------------------------------

    def _start(self, item: pytest.Item) -> str | None:
        """Start the test's job; returns what is wrong with its marker, if anything."""
        try:
            marker, error = Marker.of(item), None
        except ValueError as exc:
            marker, error = Marker(), str(exc)
        job = Job(item, marker, self.children, marker.stall_s or self.settings.stall_s)
        pytest_timeout = item.stash.get(TIMEOUT_KEY, None)
        if pytest_timeout is not None:
            del item.stash[TIMEOUT_KEY]
        if marker.timeout_s is not None:
            job.set_deadline(marker.timeout_s, "the spawnhang marker")
        elif pytest_timeout is not None:
            job.set_deadline(pytest_timeout, "pytest-timeout")
        elif self.settings.timeout_s is not None:
            job.set_deadline(self.settings.timeout_s, self.settings.timeout_from)
        if error is None and marker.expect == "hang" and not job.watchable:
            error = ("spawnhang marker: expect='hang' needs a deadline (timeout= here, "
                     "pytest-timeout or --spawnhang-timeout) or a stall window")
        item.stash[JOB_KEY] = self.job = job
        self._make_interruptible(job)
        return error

    def _make_interruptible(self, job: Job) -> None:
        """Install our SIGALRM handler (again: a test may have put its own), and the watcher.
        The handler stays between tests, where it does nothing; restored at session end."""
        if not job.watchable or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.signal(signal.SIGALRM, self.handler)
        if self.previous_handler is None:
            self.previous_handler = previous
        if self.watcher is None:
            self.watcher = threading.Thread(target=self._watch_loop, name="spawnhang-watcher",
                                            daemon=True)
            self.watcher.start()

    def _end(self, job: Job) -> str | None:
        """Stop watching; judge what the test left behind. Returns a failure message or None."""
        with job.lock:
            job.finished = True
            picked = job.picked
        if picked:
            job.watch.wake.set()  # type: ignore[union-attr]
            job.responded.set()  # type: ignore[union-attr]
            job.released.wait()  # type: ignore[union-attr]
        self.job = None
        self.leaks.list_suspects(final=False)
        if job.fired and not job.applied:  # it fired as the test ended: no report left to fail
            self.pending.append(job.hang.event)
        if not job.tracked and not job.exclude and not has_children():
            self.children = frozenset()
            return None  # the usual test, in a session without processes: nothing to read
        self.children = direct_children()
        if not job.tracked and not self.children - job.exclude:
            return None  # it started no process, or none is left
        message = self.leaks.judge(job.item.nodeid, job.tracker(), job.marker.leaks)
        self.children = direct_children()
        return message

    def _emit(self, event: dict[str, Any]) -> None:
        self.pending.append(event)

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
        if job.fired and not job.applied:
            job.done.wait()  # the capture may still be reaping
            self._apply_hang(job, report)
            job.responded.set()
        elif call.when == "call" and job.marker.expect == "hang" and report.passed:
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
            report.spawnhang = self.pending  # type: ignore[attr-defined]
        self.pending = []

    def _apply_hang(self, job: Job, report: pytest.TestReport) -> None:
        job.applied = True
        job.hang.event["trigger_to_failure_s"] = round(time.monotonic() - job.fired_at, 3)
        self.pending.append(job.hang.event)
        properties = [("spawnhang_verdict", "hang"),
                      ("spawnhang_report", job.hang.event["report"])]
        job.item.user_properties.extend(properties)  # for later reports: JUnit reads teardown's
        report.user_properties.extend(properties)
        report.sections.append(("spawnhang report", job.hang.text))
        if job.marker.expect == "hang":
            report.outcome, report.longrepr = "passed", None
        else:
            report.outcome, report.longrepr = "failed", job.hang.message

    # -- the watcher thread ----------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self.stopping.wait(WATCH_AFTER_S / 2):
            job = self.job
            if (job is not None and job.watchable and not job.picked
                    and time.monotonic() - job.started >= WATCH_AFTER_S):
                self._watch(job)

    def _watch(self, job: Job) -> None:
        from . import plugin_watch as watch

        with job.lock:
            if job.finished:
                return
            job.watch = watch.make_watch(job.tracker(), lambda: job.finished, job.deadline,
                                         job.stall_s)
            job.done, job.responded, job.released = (threading.Event() for _ in range(3))
            job.picked = True
        try:
            trigger = job.watch.wait()
            with job.lock:
                if job.finished or trigger not in ("deadline", "stall"):
                    return
                job.fired, job.fired_at = trigger, time.monotonic()
            try:
                job.hang = watch.capture_hang(job, trigger, self.settings)
            except Exception as exc:  # never leave the test hung because the capture broke
                watch.reap(job.tracker())
                message = f"spawnhang: hang ({trigger}); capturing it failed: {exc!r}"
                job.hang = watch.Hang(message, message, {
                    "kind": "hang", "nodeid": job.item.nodeid, "trigger": trigger,
                    "summary": message, "report": "not written",
                    "expected": job.marker.expect == "hang"})
            finally:
                job.done.set()
            # Only while the handler is ours: the default action of SIGALRM ends the process.
            if signal.getsignal(signal.SIGALRM) == self.handler:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
            if not job.responded.wait(UNRESPONSIVE_S):
                self._abandon(job)
        finally:
            job.released.set()

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        """SIGALRM handler, in the main thread: fail the hung phase, if the main thread is where
        pytest's runner catches what a phase raises (and not in this plugin's own code)."""
        __tracebackhide__ = True
        job = self.job
        if (job is not None and job.hang is not None and not job.interrupted
                and not job.finished and _inside_a_phase(frame)):
            job.interrupted = True
            pytest.fail(job.hang.message, pytrace=False)

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
                capture = not job.fired and not job.finished
                if capture:
                    job.fired, job.fired_at = "cancelled", time.monotonic()
            if capture:
                from . import plugin_watch as watch

                job.hang = watch.capture_hang(job, "cancelled", self.settings,
                                              signal.Signals(signum).name)
                job.applied = True  # no test report will carry it: the summary does
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
        elif not job.finished and job.marker.timeout_s is None:  # func_only: from the call on
            job.set_deadline(settings.timeout, "pytest-timeout")
            job.func_only = True
            self._make_interruptible(job)
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
        before = direct_children()
        try:
            return (yield)
        finally:
            new = self.leaks.fixture_started(fixturedef, direct_children() - before)
            if new and self.job is not None:
                self.job.disown(new)

    def pytest_fixture_post_finalizer(self, fixturedef: Any) -> None:
        self.failures.extend(self.leaks.fixture_finalized(fixturedef))


def _inside_a_phase(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside ``CallInfo.from_call``'s call of a phase (where an
    exception becomes the phase's failure), and outside this plugin's own code."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _OWN_MODULES:
            return False
        if frame.f_back is not None and frame.f_back.f_code is _FROM_CALL:
            return True
        frame = frame.f_back
    return False


_OWN_MODULES = {__name__, "pytest_spawnhang.plugin_job", "pytest_spawnhang.plugin_leaks",
                "pytest_spawnhang.plugin_watch"}
_FROM_CALL = pytest.CallInfo.from_call.__func__.__code__  # type: ignore[attr-defined]
