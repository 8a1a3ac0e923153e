"""The hang rules over one reading of the kernel's waits: pure functions of plain data.

Each judged thread gets a class (``Class``); a reading is a *closed wait* when every thread is
waiting on something only the tree itself could end, and a *polling* candidate when, beyond
those, threads re-arm timed waits in a loop. The watch loop (``stall.py``) confirms either over
time; see docs/stall.md for why each case is or is not called.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from .kernel import FdRef, ProcessWaits, ThreadWait

# A timeout longer than this is an error path, not progress: gloo's process-group timeout is
# 30 min by default, NCCL's 10 min; a program that means to wake up does so well before.
ERROR_PATH_S = 300.0
# A thread seen looping whose timed wait ends within this is back in its loop's short wait, its
# re-arm not yet seen; a longer one may be a one-shot sleep of the same thread.
LOOP_WAIT_S = 1.0

# Calls whose wait the tree can end; any other kind (pause, sigsuspend, restart_syscall, an
# unknown call, a thread stopped in user code) waits on something this reading cannot see.
CLOSABLE_KINDS = frozenset({"sleep", "lock", "read", "write", "poll", "child", "accept",
                            "connect"})
# What an fd is, and whether a wait on it stays inside the tree: "peers" asks the peers the
# kernel found, "inside" needs none (only the tree's own threads share it), "outside" means a
# process or device beyond the tree (a terminal, a FIFO path, a timerfd) could end the wait.
FD_REACH = {"pipe": "peers", "unix": "peers", "tcp": "peers", "udp": "peers", "pty": "peers",
            "eventfd": "inside", "file": "outside", "other": "outside"}


class Class(enum.Enum):
    RUNNING = "running"          # on a CPU, or not in a blocking call: progress
    TIMER = "timer"              # a one-shot timed wait that will fire by itself: wait for it
    OUTSIDE = "outside"          # something beyond the tree could end it: never called
    UNKNOWN = "unknown"          # a wait this reading cannot explain: never called
    POLLING = "polling"          # a timed wait re-armed in a loop
    EVENT_LOOP = "event loop"    # a native loop polling fds of the tree on a short timer
    ENDLESS = "endless"          # only the tree could end it, and nothing in it will


@dataclass(frozen=True)
class Judged:
    pid: int
    wait: ThreadWait
    cls: Class
    elsewhere: bool = False  # it waits on a process of the run on another node


@dataclass
class Reading:
    """One reading, judged: what blocks a call, and the facts for the evidence."""

    at: float
    threads: list[Judged] = field(default_factory=list)

    def of(self, *classes: Class) -> list[Judged]:
        return [j for j in self.threads if j.cls in classes]

    @property
    def elsewhere(self) -> bool:
        """Whether a wait of this reading leans on another node: then only the job can judge."""
        return any(j.elsewhere for j in self.threads)

    @property
    def closed(self) -> bool:
        """Every thread waits endlessly on the tree, or is an event loop over the tree's fds
        (gloo's and the TCPStore's), and one at least waits endlessly."""
        return (bool(self.of(Class.ENDLESS))
                and all(j.cls in (Class.ENDLESS, Class.EVENT_LOOP) for j in self.threads))

    @property
    def polling(self) -> bool:
        """Nothing runs, sleeps once or waits outside, and something re-arms a timed wait."""
        return (bool(self.of(Class.POLLING, Class.EVENT_LOOP))
                and all(j.cls in (Class.POLLING, Class.ENDLESS, Class.EVENT_LOOP)
                        for j in self.threads))

    def as_polling(self, keys: set[tuple[int, int]]) -> None:
        """Judge the event loops of ``keys`` (pid, tid) as polling: they run Python code."""
        self.threads = [Judged(j.pid, j.wait, Class.POLLING)
                        if j.cls is Class.EVENT_LOOP and (j.pid, j.wait.tid) in keys else j
                        for j in self.threads]

    def signature(self) -> frozenset:
        """What stays the same while nothing happens: each thread and the call it sits in."""
        return frozenset((j.pid, j.wait.tid, j.wait.number, tuple(f.target for f in j.wait.fds))
                         for j in self.threads)

    def blocker(self) -> str | None:
        """Why this reading is not a hang, in words, for the first thread that says so."""
        for cls in (Class.RUNNING, Class.TIMER, Class.OUTSIDE, Class.UNKNOWN):
            found = self.of(cls)
            if found:
                return f"pid {found[0].pid} tid {found[0].wait.tid}: {found[0].wait.describe()}"
        return None


def judge(waits: dict[int, ProcessWaits], now: float, *, skip: Iterable[int] = (),
          background: Iterable[int] = (), looping: Iterable[tuple[int, int]] = (),
          loops: Iterable[tuple[int, int]] = (), elsewhere: frozenset[str] = frozenset()
          ) -> Reading:
    """Class each thread of ``waits`` but those in ``skip`` (tids). Threads whose every peer is
    a ``background`` pid wait on the session's channel, not the program, and are left out.
    ``looping`` holds the (pid, tid) seen re-arming earlier in the call they sit in, ``loops``
    those seen looping at all since the tree last changed (a loop caught awake is still one).
    ``elsewhere`` holds the addresses ("host:port") the run's processes on other nodes hold: a
    wait on one of them stays inside the run."""
    skipped, quiet, rearming, loop_threads = set(skip), set(background), set(looping), set(loops)
    reading = Reading(at=now)
    for pid, record in waits.items():
        if record.error is not None:
            if record.error != "gone":  # unreadable: cannot be judged, so never called
                reading.threads.append(Judged(pid, ThreadWait(tid=pid, kind="other"),
                                              Class.UNKNOWN))
            continue
        for wait in record.threads:
            if wait.tid in skipped:
                continue
            if wait.peers and all(p.pid in quiet for p in wait.peers):
                continue
            key = (pid, wait.tid)
            remote = _remote_peers(wait, elsewhere)
            cls = classify(wait, now, key in rearming, remote, loop_thread=key in loop_threads)
            reading.threads.append(Judged(pid, wait, cls, elsewhere=bool(remote)))
    return reading


def classify(wait: ThreadWait, now: float, looped: bool = False,
             remote: frozenset[int] = frozenset(), loop_thread: bool = False) -> Class:
    """``remote`` holds the fds whose other end is a process of the run on another node;
    ``loop_thread``: the thread was seen looping, so its wake-ups are the loop's, not progress
    (its CPU, if any, is counted by the watch)."""
    if looped and wait.syscall == "restart_syscall":
        return Class.POLLING  # a loop's timed wait, restarted after a py-spy stop
    if wait.kind == "running":
        return Class.POLLING if loop_thread else Class.RUNNING
    if wait.syscall is None:
        return Class.UNKNOWN
    state = (wait.state or "S")[:1]
    if state == "D":
        return Class.OUTSIDE  # uninterruptible I/O: a disk, a network file system
    if state not in ("S", "I") or wait.kind not in CLOSABLE_KINDS:
        return Class.UNKNOWN  # stopped by a debugger, or a signal wait
    if _reaches_outside(wait, remote):
        return Class.OUTSIDE
    if wait.polling or looped:
        # A poll over fds that all stay in the tree is an event loop whose timer only keeps
        # house; the watch checks that it runs no Python (a Python loop there polls something).
        return Class.EVENT_LOOP if wait.kind == "poll" and wait.fds else Class.POLLING
    if wait.kind == "sleep":
        return _timer(wait, now, loop_thread)  # a sleep is meant to end, however long
    if wait.endless or (wait.deadline is not None and wait.deadline - now > ERROR_PATH_S):
        return Class.ENDLESS
    if wait.deadline is None:
        return Class.UNKNOWN  # a restarted call whose timeout is lost
    return _timer(wait, now, loop_thread)


def _timer(wait: ThreadWait, now: float, loop_thread: bool) -> Class:
    """A timed wait fires by itself, unless it is a loop's short wait (its re-arm unseen)."""
    due = wait.deadline is not None and wait.deadline - now <= LOOP_WAIT_S
    return Class.POLLING if loop_thread and due else Class.TIMER


def _reaches_outside(wait: ThreadWait, remote: frozenset[int]) -> bool:
    if any(not p.inside and p.fd not in remote for p in wait.peers):
        return True
    return any(_fd_outside(ref, wait) for ref in wait.fds if ref.fd not in remote)


def _remote_peers(wait: ThreadWait, elsewhere: frozenset[str]) -> frozenset[int]:
    """The fds of ``wait`` connected to an address a process of the run holds on another node."""
    if not elsewhere:
        return frozenset()
    return frozenset(ref.fd for ref in wait.fds if ref.remote is not None
                     and ref.remote in elsewhere)


def _fd_outside(ref: FdRef, wait: ThreadWait) -> bool:
    reach = FD_REACH.get(ref.what, "outside")
    if reach != "peers":
        return reach == "outside"
    if any(p.fd == ref.fd for p in wait.peers):
        return False  # its peers were checked above
    # No peer: a listening socket waits for the tree's own connections; a UDP socket or an
    # unconnected pipe end could hear from anyone.
    return not (ref.what in ("tcp", "unix") and ref.remote is None)


def describe(judged: Iterable[Judged], limit: int = 12) -> list[str]:
    """The evidence's lines: one per thread, "pid 42 tid 42: read on pipe:[7] <- pid 40"."""
    lines = [f"pid {j.pid} tid {j.wait.tid}: {j.wait.describe()}" for j in judged]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def cycle(reading: Reading) -> list[int]:
    """A cycle of processes waiting on each other (pid -> peer pid), if the waits show one."""
    edges: dict[int, set[int]] = {}
    for j in reading.threads:
        for peer in j.wait.peers:
            if peer.pid is not None and peer.pid != j.pid:
                edges.setdefault(j.pid, set()).add(peer.pid)
    for start in sorted(edges):
        path, seen = [start], {start}
        while True:
            nexts = sorted(edges.get(path[-1], ()))
            if not nexts:
                break
            if start in nexts:
                return path
            step = next((n for n in nexts if n not in seen), None)
            if step is None:
                break
            path.append(step)
            seen.add(step)
    return []

