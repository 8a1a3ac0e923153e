"""``spawnhang run`` on real multi-process programs: verdicts, stacks, labels, and a clean reap."""

from __future__ import annotations

import pytest

from pytest_spawnhang.model import Report

pytest.importorskip("torch")

HANG = 124
# Hangs are caught by the stall rule under a long deadline, so a slow start-up on a loaded machine
# (torch imports take seconds on 2 busy cores) never fires before the tree has settled.
SETTLED = ("--timeout", "120", "--stall", "2")


def frames_of(report: Report, pid: int) -> list[str]:
    proc = report.process(pid)
    assert proc is not None
    return [f.function for t in proc.threads for f in t.frames]


def assert_hang_report(report: Report, trigger: str = "stall") -> None:
    """Every process alive at the trigger has stacks or a reason; nothing survives."""
    assert report.verdict == "hang"
    assert report.trigger == trigger
    assert report.survivors == []
    dumped = [p for p in report.processes if p.state != "exited"]
    assert dumped, "no live process was recorded at the deadline"
    for proc in dumped:
        assert proc.threads or proc.dump_error, f"pid {proc.pid} has neither stacks nor reason"
    assert len(report.by_role("launcher")) == 1


def test_clean_gloo_job_exits(run_cli):
    run = run_cli("clean_gloo.py", "2", options=("--timeout", "60"))
    assert run.status == 0, run.stderr
    report = run.report
    assert (report.verdict, report.trigger, report.exit_code) == ("exit", "exit", 0)
    assert report.survivors == [] and run.leftovers == []


def test_crashing_rank_fails_fast_with_its_traceback(run_cli):
    run = run_cli("crash_rank.py", "2", options=("--timeout", "120"))
    report = run.report
    assert report.verdict == "fail"
    assert run.status == report.exit_code != 0
    assert report.duration_s < 60, "a crash must not wait for the deadline"
    assert report.failure is not None
    assert report.failure.rank == 1
    assert "ValueError: boom from rank 1" in report.failure.excerpt
    assert run.leftovers == []


def test_gloo_collective_mismatch(run_cli):
    run = run_cli("gloo_mismatch.py", "2", options=SETTLED)
    assert run.status == HANG, run.stderr
    report = run.report
    assert_hang_report(report)
    rank0, rank1 = report.rank(0), report.rank(1)
    assert rank0 is not None and rank1 is not None
    assert "barrier" in frames_of(report, rank0.pid)
    assert "recv" in frames_of(report, rank1.pid)
    assert "ProcessContext.join" in frames_of(report, report.by_role("launcher")[0].pid)
    assert len(report.by_role("resource_tracker")) == 1
    assert run.leftovers == []


def test_queue_deadlock_from_the_docs(run_cli):
    run = run_cli("queue_deadlock.py", options=SETTLED)
    assert run.status == HANG
    report = run.report
    assert_hang_report(report)
    launcher = report.by_role("launcher")[0]
    assert "BaseProcess.join" in frames_of(report, launcher.pid)
    child = next(p for p in report.processes if p.ppid == launcher.pid and p.role == "mp_child")
    feeder = [t for t in child.threads if t.name == "QueueFeederThread"]
    assert feeder and "Queue._feed" in [f.function for f in feeder[0].frames]
    assert run.leftovers == []


def test_spawn_worker_kept_alive_by_a_non_daemon_thread(run_cli):
    run = run_cli("nondaemon_thread.py", options=SETTLED)
    assert run.status == HANG
    report = run.report
    assert_hang_report(report)
    for rank in (0, 1):
        worker = report.rank(rank)
        assert worker is not None
        names = {t.name for t in worker.threads}
        assert "stuck-helper" in names
        assert "_shutdown" in frames_of(report, worker.pid)
    assert run.leftovers == []


def test_workers_ignoring_sigterm_and_sigint_are_killed(run_cli):
    run = run_cli("ignore_signals.py", options=(*SETTLED, "--grace", "0.5"))
    assert run.status == HANG
    report = run.report
    assert_hang_report(report)
    assert {report.rank(0) is not None, report.rank(1) is not None} == {True}
    assert run.leftovers == []


def test_helpers_escaping_by_setsid_and_double_fork_are_reaped(run_cli):
    run = run_cli("escape.py", options=(*SETTLED, "--grace", "0.5"))
    assert run.status == HANG
    report = run.report
    assert_hang_report(report)
    helpers = [p for p in report.processes if "threading.Event().wait()" in " ".join(p.cmdline)]
    assert len(helpers) == 2, [p.cmdline for p in report.processes]
    for helper in helpers:
        assert helper.threads, helper.dump_error
    rank0 = report.rank(0)
    assert rank0 is not None
    in_session, orphan = sorted(helpers, key=lambda p: p.ppid != rank0.pid)
    assert (in_session.ppid, in_session.role) == (rank0.pid, "worker_child")
    # The double-forked helper lost its parent and came back to the harness, its subreaper.
    assert orphan.ppid not in {p.pid for p in report.processes}
    assert run.leftovers == []


def test_sleep_in_user_code_is_a_plain_hang(run_cli):
    run = run_cli("sleep_user.py", options=("--timeout", "3"))
    assert run.status == HANG
    report = run.report
    assert_hang_report(report, trigger="deadline")
    assert frames_of(report, report.by_role("launcher")[0].pid)[:2] == [
        "train_for_a_long_time", "<module>"]
    assert (report.processes[0].dump_error, run.leftovers) == (None, [])
