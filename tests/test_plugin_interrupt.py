"""`pytest --spawnhang` itself interrupted (Ctrl-C, the SIGTERM of a cancelled CI job): the
running test's processes are still dumped, explained and reaped, and the report is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
import pytest
from helpers import processes_with_token

from pytest_spawnhang.engine.dump import dump_one, find_pyspy
from pytest_spawnhang.model import Report

pytest.importorskip("torch")

HUNG_TEST = """
    import threading

    import torch.multiprocessing as mp


    def worker(rank):
        threading.Event().wait()


    def test_spawn_hangs():
        mp.spawn(worker, nprocs=2)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_pytest_still_dumps_reports_and_reaps(tmp_path, sig):
    (tmp_path / "test_hung.py").write_text(textwrap.dedent(HUNG_TEST))
    token = uuid.uuid4().hex
    env = dict(os.environ, SPAWNHANG_TEST_TOKEN=token)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--spawnhang",
         f"--spawnhang-dir={tmp_path / 'reports'}", "test_hung.py"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        # pytest, the resource tracker and two ranks that have reached their worker
        while len(processes_with_token(token)) < 4 or not _workers_started(proc.pid):
            assert time.monotonic() < deadline and proc.poll() is None, "never started"
            time.sleep(0.1)
        # multiprocessing's resource tracker serves pytest itself (never reaped): it ends on its
        # own once pytest has exited and closed its end of the tracker's pipe. It is known by pid
        # now, as an exiting process's cmdline reads empty.
        trackers = {p.pid for p in psutil.Process(proc.pid).children()
                    if "resource_tracker" in " ".join(p.cmdline())}
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        assert "INTERRUPTED test_hung.py::test_spawn_hangs" in out
        report = Report.load(tmp_path / "reports" / "test_hung.py_test_spawn_hangs" /
                             "report.json")
        assert (report.verdict, report.trigger) == ("interrupted", "cancelled")
        assert report.evidence["signal"] == sig.name
        ranks = [p for p in report.processes if p.role == "rank"]
        assert len(ranks) == 2 and all(p.threads for p in ranks)
        assert report.survivors == []
        left = processes_with_token(token)
        assert {p.pid for p in left} <= trackers, left
        _, alive = psutil.wait_procs(left, timeout=10)
        assert alive == []
    finally:
        proc.kill()
        for leftover in processes_with_token(token):
            leftover.kill()


def _workers_started(pytest_pid: int) -> bool:
    """Both ranks have reached their worker function (their stacks say so)."""
    ranks = [p.pid for p in psutil.Process(pytest_pid).children()
             if "spawn_main" in " ".join(p.cmdline())]
    pyspy = find_pyspy()
    return len(ranks) == 2 and all(
        any(f.function == "worker" for t in dump_one(pid, pyspy=pyspy).threads for f in t.frames)
        for pid in ranks)


FORKED_CHILD_TEST = """
    import multiprocessing
    import signal


    def test_forked_child_is_terminated_by_sigterm():
        ctx = multiprocessing.get_context("fork")
        started = ctx.Event()
        child = ctx.Process(target=lambda: (started.set(), ctx.Event().wait()))
        child.start()
        assert started.wait(30)
        child.terminate()  # SIGTERM to a child forked from pytest, handlers and all
        child.join(30)
        assert child.exitcode == -signal.SIGTERM
"""


def test_forked_children_keep_the_default_meaning_of_sigterm(tmp_path):
    (tmp_path / "test_forked.py").write_text(textwrap.dedent(FORKED_CHILD_TEST))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--spawnhang",
         f"--spawnhang-dir={tmp_path / 'reports'}", "test_forked.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "INTERRUPTED" not in done.stdout
