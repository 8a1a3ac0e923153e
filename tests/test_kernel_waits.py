"""The kernel-side wait model on real processes: sleeps and event waits told apart with their
deadlines, pipe/unix/TCP peers, child waits, polling, unreadable processes, native stacks.

Every process is started in a session of its own and its group is killed at teardown;
synchronisation is on /proc state (the expected system call showing), never a bare sleep."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pytest_spawnhang.engine.kernel import ProcessWaits, ThreadWait, native_stack, read_waits

PY = sys.executable
BOUND_S = 20.0


@pytest.fixture
def start():
    started: list[subprocess.Popen] = []

    def run(code: str, *argv: str) -> subprocess.Popen:
        proc = subprocess.Popen([PY, "-c", code, *argv], start_new_session=True,
                                stdout=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def wait_in(pid: int, *syscalls: str, pids: list[int] | None = None) -> dict[int, ProcessWaits]:
    """Read the waits of ``pids`` until ``pid``'s main thread sits in one of ``syscalls``."""
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        found = read_waits(pids or [pid])
        main = found[pid].thread(pid)
        if main is not None and main.syscall in syscalls:
            return found
        time.sleep(0.01)
    pytest.fail(f"pid {pid} never showed {syscalls}: {read_waits([pid])[pid]}")


def main_wait(found: dict[int, ProcessWaits], pid: int) -> ThreadWait:
    wait = found[pid].thread(pid)
    assert wait is not None, found[pid]
    return wait


def test_sleep_endless_event_and_timed_event_are_told_apart_with_deadlines(start):
    sleeper = start("import time; print(time.time() + 100, flush=True); time.sleep(100)")
    endless = start("import threading; print(0, flush=True); threading.Event().wait()")
    timed = start("import threading, time; print(time.time() + 50, flush=True);"
                  " threading.Event().wait(50)")
    truths = {p.pid: float(p.stdout.readline()) for p in (sleeper, endless, timed)}

    sleep = main_wait(wait_in(sleeper.pid, "clock_nanosleep"), sleeper.pid)
    assert (sleep.kind, sleep.endless, sleep.deadline_exact) == ("sleep", False, True)
    assert abs(sleep.deadline - truths[sleeper.pid]) < 1.0
    assert sleep.describe().startswith("sleeps until ")

    forever = main_wait(wait_in(endless.pid, "futex"), endless.pid)
    assert (forever.kind, forever.endless, forever.deadline) == ("lock", True, None)
    assert forever.describe() == "futex, no timeout"

    timer = main_wait(wait_in(timed.pid, "futex"), timed.pid)
    assert (timer.kind, timer.endless, timer.deadline_exact) == ("lock", False, True)
    assert abs(timer.deadline - truths[timed.pid]) < 1.0

    # what a report stores must come back the same
    found = read_waits([sleeper.pid, timed.pid])
    for record in found.values():
        assert ProcessWaits.from_dict(json.loads(json.dumps(record.to_dict()))) == record


LAUNCHER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)"],
                         stdin=subprocess.PIPE)
print(child.pid, flush=True)
child.wait()
"""


def test_stdin_pipe_names_the_launcher_as_the_only_writer_and_the_launcher_waits_for_child(start):
    launcher = start(LAUNCHER)
    child = int(launcher.stdout.readline())
    wait_in(child, "read")
    found = wait_in(launcher.pid, "wait4", pids=[launcher.pid, child])

    read = main_wait(found, child)
    assert read.kind == "read" and read.endless
    assert [(f.fd, f.what, f.mode) for f in read.fds] == [(0, "pipe", "r")]
    assert [(p.pid, p.relation, p.inside) for p in read.peers] == [
        (launcher.pid, "write end held by", True)]
    assert f"read on {read.fds[0].target} <- write end held by pid {launcher.pid}" in \
        read.describe()

    waits = main_wait(found, launcher.pid)
    assert waits.kind == "child"
    assert [(p.pid, p.relation) for p in waits.peers] == [(child, "child")]


SOCKETPAIR = """
import socket, subprocess, sys, threading
mine, theirs = socket.socketpair()
child = subprocess.Popen([sys.executable, "-c",
    "import socket, sys; socket.socket(fileno=int(sys.argv[1])).recv(1)", str(theirs.fileno())],
    pass_fds=[theirs.fileno()])
theirs.close()
print(child.pid, flush=True)
threading.Event().wait()
"""


def test_unix_socket_peer_is_the_process_holding_the_other_end(start):
    parent = start(SOCKETPAIR)
    child = int(parent.stdout.readline())
    found = wait_in(child, "recvfrom", "recvmsg", pids=[parent.pid, child])
    recv = main_wait(found, child)
    assert recv.kind == "read"
    assert [f.what for f in recv.fds] == ["unix"]
    assert [(p.pid, p.relation) for p in recv.peers] == [(parent.pid, "peer socket held by")]


PTY_READER = """
import os, subprocess, sys
master, terminal = os.openpty()
# A child writes nothing but keeps the terminal open; the parent reads the master, as wandb
# 0.10's console capture does.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdout=terminal)
print(child.pid, flush=True)
os.read(master, 1)
"""


def test_a_pseudo_terminal_master_points_at_whoever_holds_the_terminal(start):
    reader = start(PTY_READER)
    child = int(reader.stdout.readline())
    found = wait_in(reader.pid, "read", pids=[reader.pid, child])
    read = main_wait(found, reader.pid)
    assert [f.what for f in read.fds] == ["pty"]
    terminal = read.fds[0].remote
    assert terminal is not None and terminal.startswith("/dev/pts/")
    assert sorted((p.pid, p.relation) for p in read.peers) == sorted(
        [(reader.pid, "terminal held by (itself)"), (child, "terminal held by")])
    assert f"read on /dev/ptmx -> {terminal}" in read.describe()


SERVER = """
import socket, threading
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
threading.Event().wait()
"""
CLIENT = """
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1]))).recv(1)
"""


def test_loopback_tcp_client_in_recv_points_at_the_server_process(start):
    server = start(SERVER)
    port = server.stdout.readline().strip()
    accepting = main_wait(wait_in(server.pid, "accept", "accept4"), server.pid)
    assert accepting.kind == "accept"
    assert [(f.what, f.local, f.remote) for f in accepting.fds] == [
        ("tcp", f"127.0.0.1:{port}", None)]

    client = subprocess.Popen([PY, "-c", CLIENT, port], start_new_session=True)
    try:
        wait_in(server.pid, "futex")
        found = wait_in(client.pid, "recvfrom", "recvmsg", pids=[server.pid, client.pid])
        recv = main_wait(found, client.pid)
        assert recv.kind == "read" and recv.fds[0].what == "tcp"
        assert recv.fds[0].remote == f"127.0.0.1:{port}"
        assert [(p.pid, p.inside) for p in recv.peers] == [(server.pid, True)]
        assert f"<- other end held by pid {server.pid}" in recv.describe()
    finally:
        client.kill()
        client.wait()


@pytest.mark.parametrize("loop", [
    "import time\nwhile True: time.sleep(0.05)",
    "import queue\nq = queue.Queue()\nwhile True:\n try: q.get(timeout=0.1)\n"
    " except queue.Empty: pass",
])
def test_a_wait_rearmed_in_a_loop_is_polling_and_a_continuous_one_is_not(start, loop):
    poller = start(loop)
    steady = start("import threading; threading.Event().wait()")
    call = "clock_nanosleep" if "sleep" in loop else "futex"
    first = wait_in(poller.pid, call, pids=[poller.pid, steady.pid])
    first.update(wait_in(steady.pid, "futex", pids=[poller.pid, steady.pid]))
    assert main_wait(first, poller.pid).polling is None  # one sample cannot tell

    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        second = read_waits([poller.pid, steady.pid], previous=first)
        if main_wait(second, poller.pid).polling:
            break
        time.sleep(0.02)
    assert main_wait(second, poller.pid).polling is True
    assert "re-armed in a loop" in main_wait(second, poller.pid).describe()
    assert main_wait(second, steady.pid).polling is False


def test_a_vanished_pid_gives_an_error_record(start):
    gone = start("pass")
    gone.wait()
    assert read_waits([gone.pid])[gone.pid].error == "gone"


def test_another_users_process_gives_a_permission_error_not_an_exception(start):
    target = start("import threading; print(0, flush=True); threading.Event().wait()")
    target.stdout.readline()
    if os.geteuid() != 0:  # already unprivileged: pid 1 belongs to root
        record = read_waits([1])[1]
    else:  # read the root-owned target from a forked child that dropped to nobody
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.setgid(65534)
                os.setuid(65534)
                os.write(write_end, json.dumps(read_waits([target.pid])[target.pid].to_dict())
                         .encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            text = reader.read()
        os.waitpid(pid, 0)
        record = ProcessWaits.from_dict(json.loads(text))
    assert record.error and record.error.startswith("permission denied"), record
    assert record.threads == []


@pytest.mark.skipif(not (shutil.which("eu-stack") or shutil.which("gdb")),
                    reason="no native unwinder installed (apt-get install elfutils)")
def test_native_stack_of_a_process_that_is_not_python(start):
    sleeper = subprocess.Popen(["sleep", "100"], start_new_session=True)
    try:
        wait_in(sleeper.pid, "clock_nanosleep", "nanosleep")
        stack = native_stack(sleeper.pid, timeout_s=30)
        assert stack.reason is None, stack
        frames = stack.threads[sleeper.pid]
        assert any(f.function and "nanosleep" in f.function for f in frames), frames

        cut = native_stack(sleeper.pid, timeout_s=0.001)
        assert cut.reason and cut.reason.startswith("timed out"), cut
        state = open(f"/proc/{sleeper.pid}/stat").read().rpartition(")")[2].split()[0]
        assert state != "T"  # an interrupted unwinder does not leave the target stopped
    finally:
        sleeper.kill()
        sleeper.wait()


EPOLL = """
import os, selectors, subprocess, sys
read_end, write_end = os.pipe()
holder = subprocess.Popen([sys.executable, "-c", "import threading; threading.Event().wait()"],
                          pass_fds=[write_end])
os.close(write_end)
print(holder.pid, read_end, flush=True)
selector = selectors.EpollSelector()
selector.register(read_end, selectors.EVENT_READ)
selector.select(timeout=float(sys.argv[1]) if len(sys.argv) > 1 else None)
"""


@pytest.mark.parametrize("timeout", [None, "30"])
def test_epoll_over_a_pipe_lists_the_watched_fd_and_its_writer(start, timeout):
    poller = start(EPOLL, *([timeout] if timeout else []))
    holder, read_end = map(int, poller.stdout.readline().split())
    found = wait_in(poller.pid, "epoll_wait", "epoll_pwait", pids=[poller.pid, holder])
    wait = main_wait(found, poller.pid)
    assert wait.kind == "poll"
    assert [(f.fd, f.what, f.mode) for f in wait.fds] == [(read_end, "pipe", "r")]
    assert [(p.pid, p.relation) for p in wait.peers] == [(holder, "write end held by")]
    if timeout is None:
        assert wait.endless and wait.deadline is None
    else:  # a relative millisecond timeout: an upper bound, said to be one
        assert not wait.endless and not wait.deadline_exact
        assert 0 < wait.deadline - time.time() <= 30.5
        assert "at most until" in wait.describe()
