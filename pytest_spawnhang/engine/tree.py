"""Track every descendant of a process for a whole run, and reap them at the end.

The tracker remembers each process it ever saw by (pid, create time), so a reused pid is never
mistaken for ours, and it only ever signals processes it saw descend from its root: nothing the
run did not start is touched. With the root made a child subreaper (``subreaper``), processes
that ``setsid`` or double-fork come back to it when their parent dies, so they stay in view.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from .children import descendants, direct_children


@dataclass
class Seen:
    """What the tracker knew of a process when it last saw it alive."""

    process: psutil.Process
    first_ppid: int
    cmdline: list[str]
    name: str
    ppid: int
    gone: bool = False
    sightings: int = 1  # polls that saw it: a process seen once may have been between fork and exec

    @property
    def pid(self) -> int:
        return self.process.pid


class ProcessTracker:
    """Every process seen below ``root_pid``; ``exclude`` pids (and their descendants) were
    there before, or were handed to another owner (``disown``), and belong to someone else.

    Safe to share between threads: a watcher thread polls while the main thread disowns what
    a fixture takes over; every read and write of what it has seen holds one lock.
    """

    def __init__(self, root_pid: int | None = None, exclude: frozenset[int] = frozenset()
                 ) -> None:
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self._exclude = frozenset(exclude)
        self._seen: dict[int, Seen] = {}
        self._lock = threading.RLock()

    @property
    def exclude(self) -> frozenset[int]:
        return self._exclude

    def get(self, pid: int) -> Seen | None:
        with self._lock:
            return self._seen.get(pid)

    def known(self) -> list[Seen]:
        """Every process ever seen (and not disowned), alive or not."""
        with self._lock:
            return list(self._seen.values())

    def poll(self) -> int:
        """Look at the tree once; returns how many processes appeared or ended since last time."""
        with self._lock:
            if self._nothing_new():
                return 0
            return self._poll()

    def _nothing_new(self) -> bool:
        """The fast path of a tree rooted here whose processes have all ended: one read of
        /proc instead of a scan of every process (this process is a subreaper, so when none of
        its children is new, none of its descendants is either)."""
        return (self.root_pid == os.getpid() and not direct_children() - self._exclude
                and all(s.gone for s in self._seen.values()))

    def _poll(self) -> int:
        changes = 0
        current = set()
        # A walk of /proc/<pid>/task/*/children from the root: reads per process of the tree,
        # where psutil's children() reads every process of the machine (most of the cost of
        # watching an idle tree). A pid seen alive at the last poll is taken to be the same
        # process: reusing it would need it to end and the pid to wrap within one poll.
        for pid in descendants(self.root_pid, self._exclude):
            current.add(pid)
            known = self._seen.get(pid)
            if known is not None and not known.gone:
                if known.sightings == 1:  # what it runs now, if it was seen before its exec
                    _redescribe(known)
                known.sightings += 1
                continue
            try:
                proc = psutil.Process(pid)
            except psutil.Error:  # ended since the walk
                continue
            if known is not None and known.process == proc:  # same pid and create time
                known.gone, changes = False, changes + 1
                continue
            self.track(proc)
            changes += proc.pid in self._seen
        for pid, known in self._seen.items():
            if not known.gone and pid not in current and not _is_alive(known.process):
                known.gone, changes = True, changes + 1
        return changes

    def track(self, proc: psutil.Process) -> None:
        """Track a process that is not a descendant of the root (the root itself, say)."""
        info = _describe(proc)
        if info is not None:
            with self._lock:
                self._seen[proc.pid] = Seen(proc, info[1], info[0], info[2], info[1])

    def disown(self, pids: frozenset[int]) -> None:
        """Hand ``pids`` and their descendants over to another owner: never listed, dumped or
        reaped by this tracker again."""
        with self._lock:
            self._exclude = self._exclude | pids
            for pid, known in list(self._seen.items()):
                if pid in pids or self._excluded_ancestor(known.process):
                    del self._seen[pid]

    def _excluded_ancestor(self, proc: psutil.Process) -> bool:
        if not self._exclude:
            return False
        try:
            return any(p.pid in self._exclude for p in proc.parents())
        except psutil.Error:
            return False

    def alive(self) -> list[Seen]:
        """Tracked processes still running (zombies count as ended)."""
        return [s for s in self.known() if _is_alive(s.process)]

    def ended(self) -> list[Seen]:
        """Tracked processes that have ended, less those seen only once and then with their
        parent's command line: caught between fork and exec (``import wandb`` runs short
        commands, say), they ran something unknown, and listing them under their parent's
        command line would pass them off as its workers."""
        return [s for s in self.known()
                if not _is_alive(s.process)
                and not (s.sightings == 1 and s.cmdline == self._parent_cmdline(s))]

    def _parent_cmdline(self, known: Seen) -> list[str] | None:
        parent = self.get(known.ppid)
        if parent is not None:
            return parent.cmdline
        try:
            return psutil.Process(known.ppid).cmdline()
        except psutil.Error:
            return None

    def refresh(self) -> None:
        """Re-read command lines and parents: a process seen between fork and exec showed its
        parent's."""
        for known in self.alive():
            _redescribe(known)

    def wait_adopted(self) -> None:
        """Collect the exit status of orphans this subreaper adopted, and of nothing else:
        ``subprocess`` and ``multiprocessing`` wait for their own children and must keep
        their statuses."""
        me = os.getpid()
        for known in self.known():
            if known.first_ppid == me:
                continue
            try:
                os.waitpid(known.pid, os.WNOHANG)
            except ChildProcessError:
                pass  # not (or no longer) our child


def _redescribe(known: Seen) -> None:
    info = _describe(known.process)
    if info is not None and info[0]:  # a zombie's command line reads empty: keep the last
        known.cmdline, known.ppid, known.name = info


def _describe(proc: psutil.Process) -> tuple[list[str], int, str] | None:
    try:
        with proc.oneshot():
            return proc.cmdline(), proc.ppid(), proc.name()
    except psutil.ZombieProcess:
        try:
            return [], proc.ppid(), ""
        except psutil.Error:  # reaped between the two reads (seen in a loaded matrix run)
            return None
    except psutil.Error:
        return None


def _is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def settle(tracker: ProcessTracker, within_s: float, quiet_s: float | None = None,
           keep: Callable[[Seen], bool] = lambda _: True) -> list[Seen]:
    """Give ending processes up to ``within_s`` to go, and stop early once none has ended for
    ``quiet_s`` (processes kept on purpose, pools, do not end); returns those still alive that
    ``keep`` accepts. Adopted orphans are waited for: they stay zombies until then."""
    start = last_change = time.monotonic()
    count = None
    while True:
        tracker.poll()
        tracker.wait_adopted()
        left = [s for s in tracker.alive() if keep(s)]
        now = time.monotonic()
        if len(left) != count:
            count, last_change = len(left), now
        if (not left or now - start >= within_s
                or (quiet_s is not None and now - last_change >= quiet_s)):
            return left
        time.sleep(0.02)


def reap(tracker: ProcessTracker, grace_s: float = 1.0, kill_wait_s: float = 2.0) -> list[int]:
    """SIGTERM every live tracked process, SIGKILL what outlives ``grace_s``; return survivors.

    Exits are polled, not waited for: ``psutil.wait`` on a child would take its exit status
    away from the ``subprocess`` or ``multiprocessing`` object that owns it.
    """
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, kill_wait_s)):
        targets = tracker.alive()
        if not targets:
            break
        for known in targets:
            try:
                known.process.send_signal(sig)  # psutil checks the create time first
            except psutil.Error:
                pass
        settle(tracker, wait_s)
    tracker.wait_adopted()
    return [known.pid for known in tracker.alive()]


def proc_status(pid: int) -> tuple[str | None, str | None, float | None]:
    """State, kernel wait channel and CPU seconds of a process, from /proc; None where unknown."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            state = proc.status()
            times = proc.cpu_times()
        cpu = times.user + times.system
    except psutil.Error:
        return None, None, None
    try:
        with open(f"/proc/{pid}/wchan") as fh:
            wchan = fh.read().strip() or None
    except OSError:
        wchan = None
    return state, (None if wchan == "0" else wchan), cpu
