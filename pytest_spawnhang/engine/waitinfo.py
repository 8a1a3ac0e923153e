"""The kernel's view of each thread (``kernel.read_waits``) turned into the report's model, and
the native stacks of processes py-spy cannot read.

The waits are read once per snapshot, before any dump: py-spy and the native unwinders attach
with ptrace, which interrupts sleeps (they come back as ``restart_syscall``, deadline lost)."""

from __future__ import annotations

import os
import re

from ..model import Frame, ProcessRecord, Thread, Wait, WaitPeer
from .kernel import NativeStack, ProcessWaits, ThreadWait, read_waits

NATIVE_STACK_TIMEOUT_S = 2.0  # a hang's report must not wait long for frames of a Go helper
NOT_PYTHON = "not a Python process"  # the start of such a process's dump_error
_PYTHON_EXE = re.compile(r"python|pypy", re.IGNORECASE)

__all__ = ["NATIVE_STACK_TIMEOUT_S", "NOT_PYTHON", "attach_waits", "is_python", "native_threads",
           "read_waits", "to_wait"]


def is_python(pid: int) -> bool:
    """Whether py-spy can read ``pid``: its executable is a Python, or it maps libpython. When
    /proc does not say, assume it is (py-spy then gives the reason)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return True
    if _PYTHON_EXE.search(os.path.basename(exe)):
        return True
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return "libpython" in maps.read()
    except OSError:
        return True


def to_wait(raw: ThreadWait) -> Wait:
    stopped = bool(raw.state and raw.state.startswith(("T", "t")))
    return Wait(
        kind="stopped" if stopped else raw.kind, syscall=raw.syscall, endless=raw.endless,
        deadline=raw.deadline, deadline_exact=raw.deadline_exact, detail=raw.describe(),
        left_s=None if raw.deadline is None else raw.deadline - raw.read_at,
        fds=[f.label for f in raw.fds],
        peers=[WaitPeer(p.pid, p.relation, p.inside, p.address) for p in raw.peers],
        polling=raw.polling)


def attach_waits(record: ProcessRecord, waits: ProcessWaits | None) -> None:
    """Give each dumped thread its wait (matched by OS thread id); a process py-spy did not dump
    (not Python) gets one thread per kernel thread, named from /proc."""
    if waits is None:
        return
    if waits.error:
        record.waits_error = waits.error
        return
    by_tid = {w.tid: w for w in waits.threads}
    if not record.threads and record.dump_error and record.dump_error.startswith(NOT_PYTHON):
        record.threads = [Thread(id=w.tid, name=_thread_name(record.pid, w.tid), os_id=w.tid)
                          for w in waits.threads]
    for thread in record.threads:
        raw = by_tid.get(thread.os_id) if thread.os_id is not None else None
        if raw is not None:
            thread.wait = to_wait(raw)


def native_threads(record: ProcessRecord, stack: NativeStack | None) -> None:
    """Native frames for the kernel-read threads of a non-Python process, or why there are
    none (``native_error``)."""
    if stack is None:
        return
    if stack.reason:
        record.native_error = stack.reason
    for thread in record.threads:
        frames = stack.threads.get(thread.os_id or thread.id, [])
        thread.frames = [Frame(function=f.function or (hex(f.address) if f.address else "??"),
                               file="native", line=0) for f in frames]


def _thread_name(pid: int, tid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return None
