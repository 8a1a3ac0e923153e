"""The kernel's view of each wait in the report and the diagnosis, on real hangs no stack pattern
knew: a DataLoader worker stuck in ``__getitem__``, torch's ``MultiProcessTestCase`` polling its
ranks, a child reading a pipe its parent never closes, a stopped ``wandb-core``, and sleeps
told apart from endless and timed waits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path

import psutil
import pytest
from helpers import SCENARIOS, processes_with_token

from pytest_spawnhang.model import Report
from pytest_spawnhang.render.text import render_report

HANG = 124  # spawnhang run's exit status for a hang
ROOT = Path(__file__).resolve().parents[1]


def _has(module: str) -> bool:
    try:
        metadata.version(module)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_dataloader_worker_stuck_in_getitem_is_the_root_cause(run_cli):
    run = run_cli("dataloader_stuck.py", options=("--timeout", "90", "--stall", "3"))
    assert run.status == HANG, run.stderr
    report = run.report
    workers = report.by_role("dataloader_worker")
    assert sorted(w.worker_id for w in workers) == [0, 1]
    stuck = [w for w in workers if any(f.function.endswith("__getitem__")
                                       for t in w.threads for f in t.frames)]
    assert len(stuck) == 1
    found = report.diagnosis
    assert found.root_causes == [stuck[0].pid]
    assert [f.rule for f in found.findings] == ["dataloader-worker-stuck-in-dataset"]
    assert found.findings[0].pids[0] == stuck[0].pid
    assert "__getitem__" in found.summary and stuck[0].label in found.summary
    assert "num_workers=0" in found.findings[0].advice
    assert run.leftovers == []


def test_child_reading_stdin_names_the_launcher_as_the_write_end(run_cli):
    run = run_cli("stdin_pipe.py", options=("--timeout", "60", "--stall", "2"))
    assert run.status == HANG, run.stderr
    report = run.report
    (launcher,) = report.by_role("launcher")
    (child,) = [p for p in report.processes if p.ppid == launcher.pid]
    (edge,) = [e for e in report.diagnosis.edges if e.kind == "pipe"]
    assert (edge.waiter_pid, edge.target_pid) == (child.pid, launcher.pid)
    assert edge.detail.startswith("reads pipe:[")
    assert f"its only write end is held by launcher (pid {launcher.pid})" in edge.detail
    assert [f.rule for f in report.diagnosis.findings] == ["pipe-never-written"]
    assert "launcher waits for" in report.diagnosis.summary
    assert run.leftovers == []


def test_sleep_endless_and_timed_waits_are_told_apart(run_cli):
    # A deadline, not a stall: the stall watch dumps with py-spy, whose ptrace interrupts
    # sleeps (they come back as restart_syscall, deadline lost).
    run = run_cli("wait_kinds.py", options=("--timeout", "4"))
    assert run.status == HANG, run.stderr
    (proc,) = run.report.processes
    waits = {t.name: t.wait for t in proc.threads}
    sleep, endless, timed = waits["MainThread"], waits["endless"], waits["timed"]
    assert (sleep.kind, sleep.syscall, sleep.endless) == ("sleep", "clock_nanosleep", False)
    assert sleep.deadline_exact and sleep.left_s is not None and sleep.left_s > 200
    assert (endless.kind, endless.syscall, endless.endless) == ("lock", "futex", True)
    assert endless.deadline is None and endless.detail == "futex, no timeout"
    assert (timed.kind, timed.endless) == ("lock", False)
    assert timed.deadline is not None and timed.left_s is not None and timed.left_s > 200
    text = render_report(run.report)
    assert "kernel: sleeps until " in text and "kernel: futex, no timeout" in text
    assert f"kernel: {timed.detail}" in text and "futex, until " in timed.detail
    states = {s.thread_id: s.kind for s in run.report.diagnosis.states}
    assert states[next(t.id for t in proc.threads if t.name == "MainThread")] == "sleep"
    assert run.report.diagnosis.findings == []
    assert Report.from_dict(run.report.to_dict()) == run.report  # waits survive report.json
    assert run.leftovers == []


def test_a_process_whose_waits_cannot_be_read_says_why():
    # Another user's process or a hardened kernel: read_waits gives an error record, never an
    # exception; the report keeps the stacks and says why there are no waits.
    from pytest_spawnhang.engine.kernel import ProcessWaits
    from pytest_spawnhang.engine.waitinfo import attach_waits
    from pytest_spawnhang.model import ProcessRecord, Thread

    record = ProcessRecord(pid=4242, ppid=1, cmdline=["python"],
                           threads=[Thread(id=1, name="MainThread", os_id=4242)])
    attach_waits(record, ProcessWaits(pid=4242, error="permission denied: /proc/4242/syscall"))
    assert record.waits_error == "permission denied: /proc/4242/syscall"
    assert record.threads[0].wait is None
    assert "waits not read: permission denied" in render_report(Report(
        verdict="hang", trigger="deadline", command=[], duration_s=1.0, started_at="",
        processes=[record]))


@pytest.mark.skipif(not _has("wandb") or metadata.version("wandb").startswith("0.1"),
                    reason="needs a wandb with wandb-core (0.17 or newer)")
def test_stopped_wandb_core_is_named_and_reaped(run_cli):
    run = run_cli("wandb_core_stopped.py", options=("--timeout", "90", "--stall", "4"))
    assert run.status == HANG, run.stderr
    report = run.report
    cores = {p.pid: p for p in report.by_role("wandb_core")}
    stopped = [pid for pid, p in cores.items()
               if p.threads and all(t.wait and t.wait.kind == "stopped" for t in p.threads)]
    assert stopped, [(p.pid, p.state) for p in cores.values()]
    for pid in stopped:
        assert cores[pid].dump_error.startswith("not a Python process")
    (launcher,) = report.by_role("launcher")
    into = [e for e in report.diagnosis.edges
            if e.waiter_pid == launcher.pid and e.target_pid in stopped]
    assert into and all(e.kind == "socket" for e in into)
    assert "its peer socket is held by wandb core" in into[0].detail
    assert "waits-on-stopped-process" in [f.rule for f in report.diagnosis.findings]
    assert any("wandb core" in line and "stopped" in line
               for line in report.diagnosis.summary.splitlines())
    assert report.survivors == []
    assert run.leftovers == []


@pytest.mark.skipif(not _has("expecttest") or not _has("torch"),
                    reason="MultiProcessTestCase needs torch and expecttest")
def test_multiprocess_test_case_mismatch_under_pytest(tmp_path: Path):
    token = uuid.uuid4().hex
    test_file = tmp_path / "test_mptc.py"
    shutil.copy(SCENARIOS / "mptc_mismatch.py", test_file)
    env = dict(os.environ, SPAWNHANG_TEST_TOKEN=token, PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", str(test_file), "-p", "no:cacheprovider", "-q",
             "--spawnhang", "--spawnhang-dir", str(tmp_path / "reports"),
             "--rootdir", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        (path,) = (tmp_path / "reports").glob("*/report.json")
        report = Report.load(path)
        # Nothing configured: torch's harness polls its ranks' exit codes every 0.1 s.
        assert (report.trigger, report.timeout_s) == ("stall", None), done.stdout
        assert report.evidence["rule"] == "polling without progress"
        assert "mismatched collectives: rank 0 in barrier, rank 1 in recv" in \
            report.diagnosis.summary, done.stdout
        assert [f.rule for f in report.diagnosis.findings] == ["collective-mismatch"]
        (launcher,) = report.by_role("launcher")
        polls = [e for e in report.diagnosis.edges if e.waiter_pid == launcher.pid]
        assert sorted(report.process(e.target_pid).rank for e in polls) == [0, 1]
        assert all("polls its children in a loop" in e.detail for e in polls)
        assert "_join_processes" in polls[0].detail
        # The plugin's own threads in the pytest process are no evidence: no state, folded away.
        harness = [t.id for t in launcher.threads if (t.name or "").startswith("spawnhang-")]
        assert harness
        assert not {s.thread_id for s in report.diagnosis.states} & set(harness)
        assert f"({len(harness)} thread(s) of spawnhang itself left out" in render_report(report)
        # pytest's multiprocessing resource tracker ends when pytest has closed its pipe.
        _, alive = psutil.wait_procs(processes_with_token(token), timeout=10)
        assert [p.cmdline() for p in alive] == []
    finally:
        for proc in processes_with_token(token):
            proc.kill()
