"""The entry point: read what every thread of a set of processes waits for, from /proc only.

Each file is read once, nothing is stopped and no subprocess runs: this is cheap enough to call
at every watch tick. A process that cannot be read gives a record with ``error`` set."""

from __future__ import annotations

import time
from collections.abc import Iterable

import pytest_spawnhang.engine.kernel.procfs as procfs

from .peers import TreeIndex
from .records import ProcessWaits, ThreadWait
from .syscalls import decode


def read_waits(pids: Iterable[int], *,
               previous: dict[int, ProcessWaits] | None = None) -> dict[int, ProcessWaits]:
    """What each thread of each pid waits for. With ``previous`` (an earlier result for the same
    pids), each thread's ``polling`` says whether it re-armed the same wait in between."""
    wanted = set(pids)
    index = TreeIndex(wanted)
    out = {}
    for pid in sorted(wanted):
        record = _read_process(pid, index)
        if previous and pid in previous:
            _mark_polling(record, previous[pid])
        out[pid] = record
    return out


def held_addresses(pids: Iterable[int]) -> frozenset[str]:
    """The TCP addresses the processes ``pids`` hold: how other nodes of a job know a wait on
    one of them as a wait inside the run."""
    return TreeIndex(set(pids)).tcp_addresses()


def _read_process(pid: int, index: TreeIndex) -> ProcessWaits:
    record = ProcessWaits(pid=pid)
    try:
        comm = procfs.read(f"/proc/{pid}/comm")
        if comm is None:
            return ProcessWaits(pid=pid, error="gone")
        record.comm = comm.strip()
        for tid in procfs.tids(pid):
            wait = _read_thread(pid, tid, index)
            if wait is not None:
                record.threads.append(wait)
    except FileNotFoundError:
        return ProcessWaits(pid=pid, comm=record.comm, error="gone")
    except PermissionError as exc:
        # another user's process without CAP_SYS_PTRACE, or a ptrace_scope that forbids it
        return ProcessWaits(pid=pid, comm=record.comm,
                            error=f"permission denied: {exc.filename or '/proc'}")
    except OSError as exc:
        return ProcessWaits(pid=pid, comm=record.comm, error=f"{exc.strerror or exc}")
    return record


def _read_thread(pid: int, tid: int, index: TreeIndex) -> ThreadWait | None:
    now = time.time()
    call = procfs.syscall(pid, tid)
    if call is None:
        return None  # the thread ended between the listing and the read
    state, switches = procfs.status(pid, tid)
    wait = ThreadWait(tid=tid, kind="running", state=state, voluntary_switches=switches,
                      wchan=procfs.wchan(pid, tid), read_at=now)
    if call == "running":
        return wait
    number, args = call
    if number is None:
        wait.kind = "other"
        return wait
    memory = procfs.Memory(pid)
    try:
        decoded = decode(number, args, memory)
    finally:
        memory.close()
    wait.syscall, wait.number, wait.args, wait.kind = decoded.name, number, args, decoded.kind
    wait.endless, wait.deadline = decoded.endless, decoded.deadline
    wait.deadline_exact = decoded.deadline_exact
    fds = decoded.fds
    if decoded.epoll_fd is not None:
        fds = procfs.epoll_targets(procfs.fdinfo(pid, decoded.epoll_fd))
    for fd in fds:
        ref = index.describe_fd(pid, fd)
        wait.fds.append(ref)
        wait.peers.extend(index.peers_of(pid, ref))
    if wait.kind == "child":
        wait.peers = index.children_waited(pid, wait.syscall or "", args)
    return wait


def _mark_polling(record: ProcessWaits, before: ProcessWaits) -> None:
    # Same call in both samples: voluntary switches that rose mean the thread woke and slept
    # again (a loop re-arming its wait); unchanged means one continuous wait.
    for wait in record.threads:
        old = before.thread(wait.tid)
        if (old is None or old.number is None or old.number != wait.number
                or old.voluntary_switches is None or wait.voluntary_switches is None):
            continue
        wait.polling = wait.voluntary_switches > old.voluntary_switches

