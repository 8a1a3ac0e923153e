"""The CLI's contract with its user: one-line errors for bad input, `dump`, `report`, and a
harness that still dumps, reports and reaps when it is itself interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from helpers import SCENARIOS, processes_with_token

from pytest_spawnhang.model import Report

SPAWNHANG = [sys.executable, "-m", "pytest_spawnhang"]


def spawnhang(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*SPAWNHANG, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("run", "--timeout", "-3", "--", "true"), 2, "must be a positive number of seconds"),
        (("run", "--timeout", "soon", "--", "true"), 2, "not a number of seconds"),
        (("run", "--stall", "0", "--", "true"), 2, "must be a positive number"),
        (("run", "--timeout", "5"), 2, "no command given"),
        (("run", "--", "no-such-program-xyz"), 127, "program not found: no-such-program-xyz"),
        (("run", "--report-dir", "/proc/spawnhang", "--", "true"), 2, "cannot write reports"),
        (("dump", "999999999"), 2, "no such process: 999999999"),
        (("dump", "abc"), 2, "not a process id"),
        (("report", "/nonexistent/report.json"), 2, "cannot read report"),
        (("frobnicate",), 2, "invalid choice"),
    ],
)
def test_bad_input_gets_one_line_and_a_status(tmp_path, args, status, message):
    done = spawnhang(*args, cwd=tmp_path)
    assert done.returncode == status
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("spawnhang: error: ") and message in done.stderr
    assert "Traceback" not in done.stderr


def test_not_executable_program(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    done = spawnhang("run", "--", str(script), cwd=tmp_path)
    assert done.returncode == 126 and "not executable" in done.stderr


def test_failing_program_status_is_passed_through(tmp_path):
    done = spawnhang("run", "--report-dir", str(tmp_path / "r"), "--", sys.executable, "-c",
                     "import sys; sys.exit(7)")
    assert done.returncode == 7
    assert Report.load(tmp_path / "r" / "report.json").verdict == "fail"


def test_default_report_dir_is_timestamped_under_dot_spawnhang(tmp_path):
    done = spawnhang("run", "--", sys.executable, "-c", "pass", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (report_dir,) = (tmp_path / ".spawnhang").iterdir()
    assert Report.load(report_dir / "report.json").verdict == "exit"


def _start_tree(tmp_path, script: str, expected: int, *args: str):
    """Start `spawnhang run` on a scenario; return it once `expected` processes carry the token."""
    token = uuid.uuid4().hex
    env = dict(os.environ, SPAWNHANG_TEST_TOKEN=token, PYTHONPATH=str(SCENARIOS))
    proc = subprocess.Popen(
        [*SPAWNHANG, *args, "--", sys.executable, str(SCENARIOS / script)],
        env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    deadline = time.monotonic() + 60
    while len(processes_with_token(token)) < expected:  # the harness itself + the tree
        assert time.monotonic() < deadline, "the scenario never started"
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    return proc, token


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_harness_still_dumps_reports_and_reaps(tmp_path, sig):
    pytest.importorskip("torch")
    # harness, launcher, resource tracker, two ranks
    proc, token = _start_tree(tmp_path, "ignore_signals.py", 5, "run", "--report-dir",
                              str(tmp_path / "r"), "--grace", "0.5")
    try:
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig
        report = Report.load(tmp_path / "r" / "report.json")
        assert (report.verdict, report.trigger) == ("interrupted", "cancelled")
        assert report.evidence["signal"] == sig.name
        assert {p.role for p in report.processes} >= {"launcher", "rank"}
        assert all(p.threads or p.dump_error for p in report.processes if p.state != "exited")
        assert report.survivors == [] and processes_with_token(token) == []
    finally:
        for leftover in processes_with_token(token):
            leftover.kill()


def test_dump_a_live_tree_then_kill_it(tmp_path):
    pytest.importorskip("torch")
    proc, token = _start_tree(tmp_path, "ignore_signals.py", 5, "run", "--report-dir",
                              str(tmp_path / "run"))
    try:
        launcher = next(p for p in psutil.Process(proc.pid).children() if p.name() != "py-spy")
        looked = spawnhang("dump", "--report-dir", str(tmp_path / "look"), str(launcher.pid))
        assert looked.returncode == 0, looked.stderr
        report = Report.load(tmp_path / "look" / "report.json")
        assert (report.verdict, report.trigger) == ("snapshot", "attach")
        assert report.by_role("launcher")[0].pid == launcher.pid
        assert report.rank(0) is not None and report.rank(1) is not None
        assert launcher.is_running(), "dump without --kill must not touch the tree"

        killed = spawnhang("dump", "--kill", "--report-dir", str(tmp_path / "kill"),
                           str(launcher.pid))
        assert killed.returncode == 0, killed.stderr
        assert Report.load(tmp_path / "kill" / "report.json").survivors == []
        proc.communicate(timeout=60)
        assert [p for p in processes_with_token(token) if p.pid != proc.pid] == []
    finally:
        proc.kill()
        for leftover in processes_with_token(token):
            leftover.kill()


def test_report_renders_a_saved_report_again(tmp_path):
    done = spawnhang("run", "--report-dir", str(tmp_path), "--", sys.executable, "-c", "pass")
    assert done.returncode == 0
    again = spawnhang("report", str(tmp_path / "report.json"))
    assert again.returncode == 0
    assert again.stdout == (tmp_path / "report.txt").read_text()


def test_report_html_renders_a_saved_report_to_a_file(tmp_path):
    done = spawnhang("run", "--html", "--report-dir", str(tmp_path / "r"), "--",
                     sys.executable, "-c", "pass")
    assert done.returncode == 0
    assert (tmp_path / "r" / "report.html").read_text().startswith("<!DOCTYPE html>")
    again = spawnhang("report", str(tmp_path / "r" / "report.json"), "--html",
                      str(tmp_path / "again.html"))
    assert again.returncode == 0 and again.stdout == ""
    assert (tmp_path / "again.html").read_text() == (tmp_path / "r" / "report.html").read_text()
