"""The tracker's record of processes that ended: one caught between fork and exec is not passed
off as a worker of its parent (seen in wandb 0.10.31's matrix: ``import wandb`` runs short
commands, and one seen once under the launcher's command line was numbered rank 0)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from pytest_spawnhang.engine.tree import ProcessTracker

PAUSE = "import signal; signal.pause()"


class Forked:
    """A child of this process that waits for a word on a pipe, then exits or execs; it has
    this process's command line until then."""

    def __init__(self) -> None:
        read_end, self.write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: nothing but a read, then exit or exec
            os.close(self.write_end)
            word = os.read(read_end, 16)
            if word == b"exec":
                try:
                    os.execv(sys.executable, [sys.executable, "-c", PAUSE])
                finally:
                    os._exit(1)  # never back into pytest's code in a forked copy
            os._exit(0)
        os.close(read_end)

    def tell(self, word: bytes) -> None:
        os.write(self.write_end, word)
        os.close(self.write_end)

    def wait(self) -> None:
        os.waitpid(self.pid, 0)


@pytest.fixture
def tracker() -> ProcessTracker:
    return ProcessTracker(root_pid=os.getpid(), exclude=frozenset(
        p.pid for p in psutil.Process().children()))


def test_a_process_seen_once_under_its_parents_command_line_is_not_listed(tracker):
    child = Forked()
    tracker.poll()
    child.tell(b"exit")
    child.wait()
    tracker.poll()
    assert tracker.get(child.pid).cmdline == psutil.Process().cmdline()
    assert [s.pid for s in tracker.ended()] == []


def test_a_fork_that_lived_through_two_polls_is_listed(tracker):
    child = Forked()
    tracker.poll()
    tracker.poll()
    child.tell(b"exit")
    child.wait()
    assert [s.pid for s in tracker.ended()] == [child.pid]


def test_a_process_seen_again_after_its_exec_shows_what_it_runs(tracker):
    child = Forked()
    tracker.poll()
    proc = psutil.Process(child.pid)
    child.tell(b"exec")
    try:
        deadline = time.monotonic() + 30
        while proc.cmdline()[-1:] != [PAUSE]:  # until the child has made its exec
            assert time.monotonic() < deadline and proc.status() != psutil.STATUS_ZOMBIE
        tracker.poll()
        assert tracker.get(child.pid).cmdline[-2:] == ["-c", PAUSE]
    finally:
        proc.kill()
        child.wait()
    assert [s.pid for s in tracker.ended()] == [child.pid]


def test_tracker_is_safe_to_share_between_threads(tmp_path):
    """A watcher thread polls and reads while the main thread disowns, as the plugin does
    when a fixture takes processes over; many rounds, no error, and what is disowned is gone."""
    children = [subprocess.Popen([sys.executable, "-c", PAUSE]) for _ in range(6)]
    try:
        errors: list[BaseException] = []
        stop = threading.Event()

        def reader(tracker: ProcessTracker) -> None:
            try:
                while not stop.is_set():
                    tracker.poll()
                    tracker.alive()
                    tracker.ended()
                    tracker.refresh()
                    tracker.wait_adopted()
            except BaseException as exc:  # any error in the reader fails the test below
                errors.append(exc)

        for _ in range(40):
            tracker = ProcessTracker(root_pid=os.getpid())
            tracker.poll()
            thread = threading.Thread(target=reader, args=(tracker,))
            thread.start()
            for child in children:
                tracker.disown(frozenset({child.pid}))
            stop.set()
            thread.join()
            stop.clear()
            assert {c.pid for c in children}.isdisjoint(s.pid for s in tracker.known())
        assert errors == []
    finally:
        for child in children:
            child.kill()
            child.wait()
