"""``pytest --spawnhang``, run for real: each test writes a small suite with ``pytester`` and runs
it in a pytest subprocess (the suites spawn processes and the plugin handles signals), guarded by
a subprocess timeout, so a plugin that let pytest hang fails here instead of hanging too.

Every process an inner suite starts is recorded (pid and start time) in a folder the outer test
owns; the outer test asserts that none of them is alive once the inner pytest has ended.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from pytest_spawnhang.model import Report

pytest_plugins = ["pytester"]

GUARD_S = 150  # no inner run may take this long: it would mean pytest did not exit

# Prepended to every inner module: note a process, for the outer test to check it is gone.
RECORD = """\
import os

import psutil

def record(pid):
    with open(os.path.join(os.environ["SPAWNHANG_TEST_PIDS"], str(pid)), "w") as fh:
        fh.write(repr(psutil.Process(pid).create_time()))
"""

# A test body that hangs: a child that sleeps, and a main thread that only the plugin's
# interrupt gets out of (unlike a join, it does not return when the child is reaped).
HANG = RECORD + """
import subprocess
import sys
import threading

def hang():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    record(child.pid)
    threading.Event().wait()
"""


class Recorded:
    """The processes an inner suite recorded."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def processes(self) -> list[tuple[int, float]]:
        return [(int(p.name), float(p.read_text())) for p in self.directory.iterdir()
                if p.name.isdigit()]

    def alive(self) -> list[psutil.Process]:
        found = []
        for pid, started in self.processes():
            try:
                proc = psutil.Process(pid)
                if (abs(proc.create_time() - started) < 0.01
                        and proc.status() != psutil.STATUS_ZOMBIE):
                    found.append(proc)
            except psutil.Error:
                continue
        return found


@pytest.fixture
def recorded(tmp_path_factory: pytest.TempPathFactory,
             monkeypatch: pytest.MonkeyPatch) -> Recorded:
    directory = tmp_path_factory.mktemp("pids")
    monkeypatch.setenv("SPAWNHANG_TEST_PIDS", str(directory))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    found = Recorded(directory)
    yield found
    for proc in found.alive():  # a failed test must not leave its processes to the next one
        proc.kill()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=GUARD_S)


def call_duration(result: pytest.RunResult, nodeid: str) -> float:
    """The call phase's duration, from ``--durations=0``."""
    for line in result.stdout.lines:
        match = re.match(rf"\s*([\d.]+)s call\s+{re.escape(nodeid)}$", line)
        if match:
            return float(match.group(1))
    raise AssertionError(f"no duration for {nodeid}")


# -- an in-process mp.spawn whose workers never return -----------------------------------------

SPAWN_HANG = RECORD + """
import time

import pytest
import torch.multiprocessing as mp


def worker(rank):
    record(os.getpid())
    time.sleep(3600)  # the workers wait here


@pytest.mark.timeout(8)
def test_spawn_hangs():
    mp.spawn(worker, nprocs=2)


def test_next_finds_no_process_left():
    left = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]
    assert [c for c in left if "multiprocessing.resource_tracker" not in c] == []
"""
WORKER_LINE = SPAWN_HANG.splitlines().index("    time.sleep(3600)  # the workers wait here") + 1


def check_spawn_hang(pytester: pytest.Pytester, result: pytest.RunResult,
                     recorded: Recorded) -> None:
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([
        "*spawnhang: hang after 8.*s (deadline 8s from pytest-timeout); dumped and reaped 2 "
        "process(es) of the test",
        "*HANG test_spawn_hang.py::test_spawn_hangs - * (report: *report.html)",
    ])
    result.stdout.no_fnmatch_line("*Timeout (>8.0s) from pytest-timeout*")  # we took it over
    report = Report.load(pytester.path / ".spawnhang/test_spawn_hang.py_test_spawn_hangs"
                         / "report.json")
    assert report.verdict == "hang" and report.trigger == "deadline"
    ranks = report.by_role("rank")
    assert sorted(r.rank for r in ranks) == [0, 1]
    for rank in ranks:  # each worker's stack shows where it waits
        frames = [(f.function, Path(f.file).name, f.line) for t in rank.threads for f in t.frames]
        assert ("worker", "test_spawn_hang.py", WORKER_LINE) in frames
    (launcher,) = report.by_role("launcher")  # pytest itself, blocked in the test
    assert "test_spawn_hangs" in [f.function for t in launcher.threads for f in t.frames]
    assert len(recorded.processes()) == 2 and recorded.alive() == []


def test_spawn_hang_is_failed_explained_and_reaped(pytester: pytest.Pytester,
                                                   recorded: Recorded) -> None:
    pytester.makepyfile(test_spawn_hang=SPAWN_HANG)
    result = run(pytester, "--spawnhang", "--durations=0")
    check_spawn_hang(pytester, result, recorded)
    # The deadline counts from the start of the setup; the failure follows it closely.
    assert 8.0 <= call_duration(result, "test_spawn_hang.py::test_spawn_hangs") < 8.0 + 4.0


def test_spawn_hang_under_xdist(pytester: pytest.Pytester, recorded: Recorded) -> None:
    pytester.makepyfile(test_spawn_hang=SPAWN_HANG)
    result = run(pytester, "--spawnhang", "-n", "2", "--dist", "loadfile",
                 "--junitxml=junit.xml")
    check_spawn_hang(pytester, result, recorded)
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    hung = properties["test_spawn_hangs"]
    assert hung["spawnhang_verdict"] == "hang"
    assert hung["spawnhang_report"].endswith("test_spawn_hang.py_test_spawn_hangs/report.html")
    assert properties["test_next_finds_no_process_left"] == {}


# -- which deadline, expect="hang", stall -------------------------------------------------------


def test_deadline_precedence_marker_pytest_timeout_option(pytester: pytest.Pytester,
                                                         recorded: Recorded) -> None:
    pytester.makepyfile(test_deadlines=HANG + """
import pytest

@pytest.mark.spawnhang(timeout=2)
@pytest.mark.timeout(60)
def test_marker():
    hang()

@pytest.mark.timeout(3)
def test_pytest_timeout():
    hang()

def test_option():
    hang()
""")
    result = run(pytester, "--spawnhang", "--spawnhang-timeout=4", "--durations=0")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random([
        "*spawnhang: hang after 2.*s (deadline 2s from the spawnhang marker); dumped and "
        "reaped 1 process(es) of the test",
        "*spawnhang: hang after 3.*s (deadline 3s from pytest-timeout)*",
        "*spawnhang: hang after 4.*s (deadline 4s from --spawnhang-timeout)*",
    ])
    result.stdout.no_fnmatch_line("*from pytest-timeout.*")  # pytest-timeout's own message
    for name, deadline in (("test_marker", 2), ("test_pytest_timeout", 3), ("test_option", 4)):
        # Here only the interrupt ends the test: the wait does not return by itself.
        assert deadline <= call_duration(result, f"test_deadlines.py::{name}") < deadline + 3
    assert len(recorded.processes()) == 3 and recorded.alive() == []


def test_deadline_covers_setup_to_teardown_or_with_func_only_the_call(
        pytester: pytest.Pytester, recorded: Recorded) -> None:
    pytester.makepyfile(test_phases=HANG + """
import time

import pytest

@pytest.fixture
def slow_setup():
    time.sleep(2.5)  # longer than the deadline, which func_only does not apply to the setup

@pytest.fixture
def stuck_teardown():
    yield
    hang()

@pytest.mark.timeout(2, func_only=True)
def test_func_only_ignores_the_setup(slow_setup):
    pass

@pytest.mark.timeout(2, func_only=True)
def test_func_only_call_hangs():
    hang()

@pytest.mark.spawnhang(timeout=2)
def test_teardown_hangs(stuck_teardown):
    pass
""")
    result = run(pytester, "--spawnhang", "-rA")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines_random([
        "PASSED test_phases.py::test_func_only_ignores_the_setup",
        "*_ ERROR at teardown of test_teardown_hangs _*",
        "spawnhang: hang after 2.*s (deadline 2s from the spawnhang marker); dumped and reaped "
        "1 process(es) of the test",
        "*_ test_func_only_call_hangs _*",
        "spawnhang: hang after *s (deadline 2s from pytest-timeout); dumped and reaped 1 "
        "process(es) of the test",
    ])
    assert len(recorded.processes()) == 2 and recorded.alive() == []


def test_expect_hang_passes_on_a_hang_and_fails_on_an_exit(pytester: pytest.Pytester,
                                                          recorded: Recorded) -> None:
    pytester.makepyfile(test_expect=HANG + """
import pytest

@pytest.mark.spawnhang(timeout=2, expect="hang")
def test_known_hang():
    hang()

@pytest.mark.spawnhang(timeout=5, expect="hang")
def test_fixed():
    pass
""")
    result = run(pytester, "--spawnhang", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random([
        "PASSED test_expect.py::test_known_hang",
        "spawnhang: expected a hang, but the test ended after 0.*s (5s deadline from the "
        "spawnhang marker)",
        "HANG (expected) test_expect.py::test_known_hang - *",
    ])
    assert recorded.alive() == []


def test_stall_catches_an_idle_tree_and_spares_work(pytester: pytest.Pytester,
                                                    recorded: Recorded) -> None:
    pytester.makepyfile(test_stall=HANG + """
import time

def test_idle_tree():  # a child that reads what the test never writes, a test that waits
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    record(child.pid)
    threading.Event().wait()

def test_busy_child():
    spin = "import time\\nend = time.time() + 3\\nwhile time.time() < end: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)

def test_no_child():
    time.sleep(2.5)  # the work of the pytest process itself, which the stall window ignores

def test_child_waits_while_the_test_computes():
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    record(child.pid)
    end = time.time() + 10  # long enough that without the main thread a stall is called
    while time.time() < end:  # the test's own main thread at work: progress
        pass
    child.kill()
    child.wait()
""")
    result = run(pytester, "--spawnhang", "--spawnhang-stall=1.5", "-rA")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*_ test_idle_tree _*",
                                 "spawnhang: hang after *s (closed wait); dumped and "
                                 "reaped 1 process(es) of the test"])
    assert recorded.alive() == []


def test_a_test_that_swallows_the_interrupt_still_lets_pytest_exit(
        pytester: pytest.Pytester, recorded: Recorded) -> None:
    pytester.makepyfile(test_stubborn=HANG + """
def test_stubborn():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    record(child.pid)
    while True:
        try:
            threading.Event().wait()
        except BaseException:
            pass
""")
    result = run(pytester, "--spawnhang", "--spawnhang-timeout=2")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "test_stubborn.py::test_stubborn: spawnhang: hang after 2.*s (deadline 2s from "
        "--spawnhang-timeout)*",
        "spawnhang: the test did not respond to the interrupt within 10s; reaping every "
        "process left and exiting."])
    assert len(recorded.processes()) == 1 and recorded.alive() == []


# -- processes that outlive their owner ---------------------------------------------------------

LEAKS_CONFTEST = RECORD + """
import subprocess
import sys

import pytest

def start(tag):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", tag])
    record(proc.pid)
    return proc

@pytest.fixture(scope="session")
def session_pool():
    yield start("session-pool")  # and left running: it outlives its fixture's teardown

@pytest.fixture(scope="module")
def module_pool():
    proc = start("module-pool")
    yield proc
    proc.terminate()
    proc.wait()

@pytest.fixture
def stopped_without_wait():
    proc = start("stopped-without-wait")
    yield proc
    proc.terminate()  # it may still be alive when the test ends: not a leftover
"""

LEAKS_TESTS = RECORD + """
import multiprocessing
import time

LEAKED = os.path.join(os.environ["SPAWNHANG_TEST_PIDS"], "leaked.txt")

def test_one(session_pool, module_pool, stopped_without_wait):
    assert session_pool.poll() is None and module_pool.poll() is None

def test_leaks_a_process():
    # Not a daemon: multiprocessing would join it at exit, and pytest would never end.
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(600,))
    proc.start()
    record(proc.pid)
    with open(LEAKED, "w") as fh:
        fh.write(str(proc.pid))

def test_two(session_pool, request):
    assert session_pool.poll() is None  # the session's pool lives through every test
    with open(LEAKED) as fh:
        leaked = psutil.Process(int(fh.read()))
    alive = leaked.is_running() and leaked.status() != psutil.STATUS_ZOMBIE
    assert alive == (request.config.getoption("spawnhang_leaks") in (None, "warn"))
"""


@pytest.mark.parametrize("policy", ["warn", "reap", "fail"])
def test_leaks_policy(pytester: pytest.Pytester, recorded: Recorded, policy: str) -> None:
    pytester.makeconftest(LEAKS_CONFTEST)
    pytester.makepyfile(test_leaks=LEAKS_TESTS)
    args = ["--spawnhang"] if policy == "warn" else ["--spawnhang", f"--spawnhang-leaks={policy}"]
    result = run(pytester, *args)
    action = "left running" if policy == "warn" else "reaped"
    result.stdout.fnmatch_lines_random([
        f"LEFTOVER 1 process(es) outlived test_leaks.py::test_leaks_a_process ({action}, "
        f"leaks={policy}):",
        f"LEFTOVER 1 process(es) outlived fixture 'session_pool' (session scope) ({action}, "
        f"leaks={policy}):",
        "    pid *: *session-pool",
    ])
    assert len([ln for ln in result.stdout.lines if ln.startswith("LEFTOVER")]) == 2  # once each
    for quiet in ("*module-pool*", "*stopped-without-wait*", "*resource_tracker*",
                  "*ERROR at teardown of test_one*"):
        result.stdout.no_fnmatch_line(quiet)
    if policy == "warn":
        result.assert_outcomes(passed=3)
        result.stdout.fnmatch_lines([
            "REAPED at session end: 2 process(es)",
            "    pid * (left by *): *",
            "    pid * (left by *): *",
        ])
    elif policy == "reap":
        result.assert_outcomes(passed=3)
        result.stdout.no_fnmatch_line("REAPED at session end*")
    else:
        result.assert_outcomes(passed=3, errors=2)
        result.stdout.fnmatch_lines_random([
            "*ERROR at teardown of test_leaks_a_process*",
            "*ERROR at teardown of test_two*",
            "spawnhang: 1 process(es) outlived fixture 'session_pool' (session scope) "
            "(leaks=fail; reaped):",
        ])
    assert len(recorded.processes()) == 4 and recorded.alive() == []


HEALTHY = """
import multiprocessing
import subprocess
import sys
import threading

import pytest

def test_plugin_is_inert_without_the_flag(request):
    if not request.config.getoption("spawnhang"):
        assert "pytest_spawnhang.plugin.session" not in sys.modules
        assert "pytest_spawnhang.engine" not in sys.modules
        assert [t.name for t in threading.enumerate()] == ["MainThread"]

@pytest.fixture(scope="module")
def pool():
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        yield pool

def test_pool(pool):
    assert pool.map(abs, [-1, -2]) == [1, 2]

def test_subprocess():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n

@pytest.mark.skip(reason="skipped")
def test_skip():
    pass

@pytest.mark.xfail(strict=True)
def test_xfail():
    assert False

def test_fails():
    assert 1 == 2

@pytest.mark.spawnhang(timeout=30)
def test_marker_is_registered():
    pass
"""


def test_healthy_suite_runs_the_same_with_and_without_the_flag(
        pytester: pytest.Pytester, recorded: Recorded) -> None:
    pytester.makepyfile(test_healthy=HEALTHY)
    without = run(pytester, "--strict-markers")
    with_flag = run(pytester, "--strict-markers", "--spawnhang", "--spawnhang-timeout=60")
    expected = {"passed": 7, "failed": 1, "skipped": 1, "xfailed": 1}
    assert without.parseoutcomes() == with_flag.parseoutcomes() == expected
    assert without.ret == with_flag.ret == pytest.ExitCode.TESTS_FAILED
    with_flag.stdout.no_fnmatch_line("*= spawnhang =*")  # nothing to say
    with_flag.stdout.fnmatch_lines(["spawnhang: timeout 60.0s, hang detection on (closed waits "
                                    "at once, polling after 10s), leaks=warn, reports in "
                                    "*/.spawnhang"])
    without.stdout.no_fnmatch_line("spawnhang:*")


# -- options, the marker's arguments, the fixture ----------------------------------------------


def test_ini_options(pytester: pytest.Pytester, recorded: Recorded,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("""
[pytest]
spawnhang = true
spawnhang_timeout = 2
spawnhang_leaks = reap
spawnhang_dir = reports
""")
    pytester.makepyfile(test_ini=HANG + """
def test_hangs():
    hang()

def test_leaks():
    record(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid)
""")
    (pytester.path / "elsewhere").mkdir()
    monkeypatch.chdir(pytester.path / "elsewhere")  # the dir is relative to the ini file
    result = run(pytester, "-c", "../tox.ini", "--rootdir=..", "..")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines_random([
        "spawnhang: timeout 2.0s, hang detection on (closed waits at once, polling after 10s), "
        "leaks=reap, reports in */reports",
        "*(deadline 2s from ini option 'spawnhang_timeout')*",
        "LEFTOVER 1 process(es) outlived test_ini.py::test_leaks (reaped, leaks=reap):",
    ])
    assert (pytester.path / "reports/test_ini.py_test_hangs/report.json").is_file()
    assert len(recorded.processes()) == 2 and recorded.alive() == []


@pytest.mark.parametrize(("args", "ini", "error"), [
    (["--spawnhang", "--spawnhang-timeout=abc"], "",
     "ERROR: --spawnhang-timeout: expected a number of seconds, got 'abc'"),
    (["--spawnhang-timeout=-1"], "",
     "ERROR: --spawnhang-timeout: expected a positive number of seconds, got '-1'"),
    (["--spawnhang", "--spawnhang-stall=inf"], "",
     "ERROR: --spawnhang-stall: expected a positive number of seconds, got 'inf'"),
    (["--spawnhang-leaks=kill"], "",
     "ERROR: --spawnhang-leaks: expected one of warn, reap, fail, got 'kill'"),
    ([], "spawnhang_leaks = often",
     "ERROR: ini option 'spawnhang_leaks': expected one of warn, reap, fail, got 'often'"),
    (["--spawnhang", "--spawnhang-dir=/proc/self/reports"], "",
     "ERROR: cannot write reports to /proc/self/reports: *"),
])
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                            ini: str, error: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(*args)  # fails before any test runs
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([error])
    assert "Traceback" not in result.stderr.str()


def test_bad_marker_arguments_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_markers="""
import pytest

@pytest.mark.spawnhang(timeout="soon")
def test_timeout():
    pass

@pytest.mark.spawnhang(expect="maybe")
def test_expect():
    pass

@pytest.mark.spawnhang(expect="hang", stall=False)
def test_hang_without_deadline():
    pass

@pytest.mark.spawnhang(leaks="sometimes")
def test_leaks():
    pass
""")
    result = run(pytester, "--spawnhang")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines_random([
        "spawnhang marker: expected a number of seconds, got 'soon'",
        "spawnhang marker: expect must be 'exit' or 'hang', got 'maybe'",
        "spawnhang marker: expect='hang' needs a deadline (timeout= here, pytest-timeout or "
        "--spawnhang-timeout) or hang detection",
        "spawnhang marker: leaks must be one of warn, reap, fail, got 'sometimes'",
    ])


def test_fixture_runs_commands_and_spawn_targets(pytester: pytest.Pytester,
                                                 recorded: Recorded) -> None:
    pytester.makepyfile(test_fixture="""
import sys

import pytest

def worker(rank, total):
    assert total == 2

def test_run_exits(spawnhang):
    spawnhang.run([sys.executable, "-c", "pass"], timeout=30).assert_exits()

def test_run_hangs(spawnhang, tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text("import time\\ndef stuck_here():\\n    time.sleep(600)\\nstuck_here()\\n")
    result = spawnhang.run([sys.executable, str(script)], timeout=3)
    result.assert_hangs(frame="stuck_here")
    result.assert_hangs(frame="stuck.py:3")
    assert result.verdict == "hang" and result.path.is_file()
    with pytest.raises(AssertionError, match="expected a hang with a frame matching 'elsewhere'"):
        result.assert_hangs(frame="elsewhere")
    with pytest.raises(AssertionError, match="expected a clean exit, got hang"):
        result.assert_exits()

def test_spawn_exits(spawnhang):
    spawnhang.spawn(worker, args=(2,), nprocs=2, timeout=90).assert_exits()

def test_failure_is_not_an_exit(spawnhang):
    result = spawnhang.run([sys.executable, "-c", "raise SystemExit(3)"], timeout=30)
    assert result.verdict == "fail" and result.exit_code == 3
    with pytest.raises(AssertionError, match="expected a clean exit, got fail"):
        result.assert_exits()
""")
    result = run(pytester)  # the fixture needs no --spawnhang
    result.assert_outcomes(passed=4)
    assert recorded.alive() == []
