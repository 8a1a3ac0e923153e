"""This process's own children, read cheaply: the plugin asks once per test, so these cost a
system call or a read of /proc, and import nothing (psutil only on a kernel without
CONFIG_PROC_CHILDREN)."""

from __future__ import annotations

import os
import threading


def has_children() -> bool:
    """Whether this process has any child, of any of its threads, alive or not yet waited for:
    one system call, where ``direct_children`` reads /proc. WNOWAIT leaves a child's exit
    status to whoever waits for it."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def direct_children() -> frozenset[int]:
    """This process's children, read from /proc without scanning every process."""
    return children_of("self")


def children_of(pid: int | str) -> frozenset[int]:
    """The children of ``pid`` (of any of its threads), from /proc/<pid>/task/*/children: a
    read per thread, where psutil reads every process on the machine. Empty once it ended."""
    pids: set[int] = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:  # ended, or not ours to read
        return frozenset()
    for tid in tids:
        try:  # os.open and os.read: half the cost of open(), and this runs once per test
            fd = os.open(f"/proc/{pid}/task/{tid}/children", os.O_RDONLY)
        except OSError:  # the thread has ended since listdir
            continue
        try:
            pids.update(map(int, os.read(fd, 1 << 20).split()))
        except OSError:
            continue
        finally:
            os.close(fd)
    return frozenset(pids)


def descendants(root: int, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Every process below ``root``, parents before children, leaving out the subtrees of
    ``exclude``."""
    found, todo = [], [root]
    while todo:
        for kid in children_of(todo.pop()):
            if kid not in exclude:
                found.append(kid)
                todo.append(kid)
    return found


if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children"):

    def children_of(pid: int | str) -> frozenset[int]:  # a kernel without CONFIG_PROC_CHILDREN
        import psutil

        try:
            return frozenset(p.pid for p in psutil.Process(
                None if pid == "self" else int(pid)).children())
        except psutil.Error:
            return frozenset()
