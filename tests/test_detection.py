"""Hang detection with nothing configured (docs/stall.md), on real processes: closed waits are
called within seconds, with no deadline anywhere; healthy programs that wait quietly are not."""

from __future__ import annotations

import socket
import threading

import pytest
from test_plugin import GUARD_S, RECORD, Recorded, recorded  # noqa: F401  (a fixture)

from pytest_spawnhang.model import Report

pytest.importorskip("torch")

HANG = 124

GLOO_MISMATCH = RECORD + """
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, port):
    record(os.getpid())
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    if rank == 0:
        dist.barrier()
    else:
        dist.recv(torch.zeros(1), src=0)


def test_mismatch():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(worker, args=(port,), nprocs=2)
"""

LOCK_ORDER = """
import threading


def test_lock_order():
    first, second = threading.Lock(), threading.Lock()
    both_hold = threading.Barrier(2)

    def take(one, other):
        with one:
            both_hold.wait()
            with other:
                pass

    threads = [threading.Thread(target=take, args=pair, daemon=True)
               for pair in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""


def run_failing(pytester: pytest.Pytester, **files: str) -> pytest.RunResult:
    """Run ``files`` under ``pytest --spawnhang`` with nothing else configured: one test fails."""
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--spawnhang",
                                           timeout=GUARD_S)
    result.assert_outcomes(failed=1)
    return result


def inner_report(pytester: pytest.Pytester, nodeid: str) -> Report:
    name = nodeid.replace("::", "_")
    return Report.load(pytester.path / ".spawnhang" / name / "report.json")


def test_spawned_gloo_mismatch_is_called_with_no_deadline(pytester: pytest.Pytester,
                                                          recorded: Recorded) -> None:  # noqa: F811
    result = run_failing(pytester, test_gloo=GLOO_MISMATCH)
    result.stdout.fnmatch_lines(["spawnhang: hang after *s (closed wait); dumped and reaped *"])
    report = inner_report(pytester, "test_gloo.py::test_mismatch")
    assert (report.trigger, report.evidence["rule"]) == ("stall", "closed wait")
    assert report.timeout_s is None
    assert any("futex" in line for line in report.evidence["waits"])
    assert recorded.alive() == []


def test_lock_order_deadlock_between_two_threads_of_the_test(pytester: pytest.Pytester,
                                                              recorded: Recorded  # noqa: F811
                                                              ) -> None:
    result = run_failing(pytester, test_locks=LOCK_ORDER)
    result.stdout.fnmatch_lines(["spawnhang: hang after *s (closed wait); dumped and reaped 0 *"])
    report = inner_report(pytester, "test_locks.py::test_lock_order")
    assert report.evidence["rule"] == "closed wait"
    threads = {line.split(":")[0] for line in report.evidence["waits"]}
    assert len(threads) == 3  # the main thread in join(), the two threads in acquire()


def test_detection_off_leaves_the_deadline(pytester: pytest.Pytester,
                                           recorded: Recorded) -> None:  # noqa: F811
    pytester.makepyfile(test_locks=LOCK_ORDER.replace(
        "def test_lock_order", "import pytest\n\n@pytest.mark.spawnhang(timeout=4, stall=False)"
        "\ndef test_lock_order"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--spawnhang",
                                           timeout=GUARD_S)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["spawnhang: hang after 4.*s (deadline 4s from the spawnhang "
                                 "marker)*"])
    result.stdout.fnmatch_lines(["spawnhang: timeout from marker/pytest-timeout, hang detection "
                                 "on (closed waits at once, polling after 10s)*"])
    off = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--spawnhang",
                                        "--spawnhang-stall=off", "--co", timeout=GUARD_S)
    off.stdout.fnmatch_lines(["spawnhang: *, hang detection off, *"])


def test_queue_join_deadlock_under_spawnhang_run_with_no_options(run_cli):
    run = run_cli("queue_deadlock.py")
    assert run.status == HANG, run.stderr
    report = run.report
    assert (report.verdict, report.trigger, report.timeout_s) == ("hang", "stall", None)
    assert report.evidence["rule"] == "closed wait"
    assert report.evidence["cycle"].count("pid") == 3  # launcher -> child -> launcher
    assert report.survivors == [] and run.leftovers == []


def test_stall_off_leaves_the_deadline(run_cli):
    run = run_cli("queue_deadlock.py", options=("--stall", "off", "--timeout", "4"))
    assert run.status == HANG, run.stderr
    assert (run.report.trigger, run.report.evidence["rule"]) == ("deadline", "deadline")
    assert run.leftovers == []


@pytest.mark.parametrize("script,args", [
    ("sleep_once.py", ("25",)),       # the case: a one-shot sleep, 2.5 windows long
    ("queue_poller.py", ("2", "10")),  # get(timeout=1) in a loop, an item every 10 s
    ("busy_worker.py", ("4",)),        # CPU-bound, in one unchanging frame
])
def test_healthy_quiet_programs_are_never_called(run_cli, script, args):
    run = run_cli(script, *args)
    assert run.status == 0, run.stderr
    assert (run.report.verdict, run.report.trigger) == ("exit", "exit")
    assert run.leftovers == []


def test_a_wait_on_a_server_outside_the_run_is_never_called(run_cli):
    """The server is this test's: the run waits on it for longer than a closed wait needs to be
    confirmed, and finishes once it answers."""
    answered = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer_slowly() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(64)
                # The slow server, twice the polling window: the behaviour under test.
                answered.wait(20)
                conn.sendall(b"answer\n")

        thread = threading.Thread(target=answer_slowly, daemon=True)
        thread.start()
        host, port = server.getsockname()
        run = run_cli("outside_server.py", f"{host}:{port}")
        thread.join(timeout=30)
    assert run.status == 0, run.stderr
    assert (run.report.verdict, run.report.trigger) == ("exit", "exit")
    assert run.leftovers == []


def test_dataloader_worker_stuck_in_getitem_is_called_with_no_options(run_cli):
    """The main process re-arms ``get(timeout=5)`` on the data queue, the other worker polls its
    index queue, the stuck one waits for a lock for ever: polling without progress."""
    run = run_cli("dataloader_stuck.py")
    assert run.status == HANG, run.stderr
    report = run.report
    assert (report.trigger, report.timeout_s) == ("stall", None)
    assert report.evidence["rule"] == "polling without progress"
    assert report.evidence["quiet_for_s"] >= report.stall_s
    assert [f.rule for f in report.diagnosis.findings] == ["dataloader-worker-stuck-in-dataset"]
    assert report.survivors == [] and run.leftovers == []


def test_a_deadline_that_fires_says_why_detection_did_not(run_cli):
    """A sleep that outlasts the deadline is never a hang by detection; the report says what
    the program was waiting for when the deadline ended it."""
    run = run_cli("sleep_user.py", options=("--timeout", "3"))
    assert run.status == HANG, run.stderr
    assert run.report.trigger == "deadline"
    assert "sleeps until" in run.report.evidence["not_called_because"]
    assert "detection did not call it: pid " in (run.report_dir / "report.txt").read_text()


def test_a_wait_on_another_nodes_address_is_inside_the_run():
    """Pure rule: the same socket wait is outside the tree on its own, and the job's to judge
    once the address is known to be held by a process of the run on another node."""
    from pytest_spawnhang.engine.detect import Class, judge
    from pytest_spawnhang.engine.kernel import FdRef, Peer, ProcessWaits, ThreadWait

    ref = FdRef(fd=5, what="tcp", target="socket:[1]", local="10.0.0.1:4000",
                remote="10.0.0.2:5000")
    wait = ThreadWait(tid=7, kind="read", syscall="recvfrom", number=45, endless=True,
                      fds=[ref], state="S (sleeping)",
                      peers=[Peer(None, "peer socket held by", fd=5, inside=False,
                                  address="10.0.0.2:5000")])
    waits = {7: ProcessWaits(pid=7, threads=[wait])}
    alone = judge(waits, now=0.0)
    assert [j.cls for j in alone.threads] == [Class.OUTSIDE]
    assert not alone.elsewhere and not alone.closed
    job = judge(waits, now=0.0, elsewhere=frozenset({"10.0.0.2:5000"}))
    assert [j.cls for j in job.threads] == [Class.ENDLESS]
    assert job.elsewhere and job.closed


def test_lock_order_deadlock_in_one_process_is_called_and_named(run_cli):
    """Two threads each hold the lock the other wants; the main thread joins them. The join
    has two candidates, both blocked on a lock: whichever it joins never ends."""
    run = run_cli("lock_order.py")
    assert run.status == HANG, run.stderr
    report = run.report
    assert (report.trigger, report.evidence["rule"]) == ("stall", "closed wait")
    lines = report.diagnosis.summary.splitlines()
    assert lines[0].startswith("launcher waits for thread 'Thread-")
    assert lines[1].startswith("launcher (threads 'Thread-"), lines
    assert "are blocked on a lock or event" in lines[1] and "lock_order.py:13" in lines[1]
    assert run.leftovers == []
