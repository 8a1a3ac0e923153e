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
    pids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:  # os.open and os.read: half the cost of open(), and this may run once per test
            fd = os.open(f"/proc/self/task/{tid}/children", os.O_RDONLY)
        except FileNotFoundError:  # the thread has ended since listdir
            continue
        try:
            pids.update(map(int, os.read(fd, 1 << 20).split()))
        finally:
            os.close(fd)
    return frozenset(pids)


if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children"):

    def direct_children() -> frozenset[int]:  # a kernel without CONFIG_PROC_CHILDREN
        import psutil

        return frozenset(p.pid for p in psutil.Process().children())
