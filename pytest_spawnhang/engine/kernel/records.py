"""What one thread waits for, as the kernel shows it: plain data that round-trips through JSON.

Nothing here reads /proc; ``waits.py`` fills these records and ``describe()`` words them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("sleep", "lock", "read", "write", "poll", "child", "accept", "connect", "other",
         "running")
FD_WHATS = ("pipe", "unix", "tcp", "udp", "pty", "file", "eventfd", "other")


@dataclass
class FdRef:
    """One file descriptor a wait involves."""

    fd: int
    what: str                     # one of FD_WHATS
    target: str                   # the /proc/<pid>/fd/<fd> link: "pipe:[123]", "/dev/pts/0"
    inode: int | None = None
    mode: str | None = None       # "r", "w" or "rw", from fdinfo's flags
    local: str | None = None      # "127.0.0.1:29500" for TCP/UDP, the bound name for unix
    remote: str | None = None     # the other end: "127.0.0.1:41000", a pty's "/dev/pts/3"

    @property
    def label(self) -> str:
        if self.what in ("tcp", "udp") and self.local:
            return f"{self.local}" + (f" -> {self.remote}" if self.remote else " (listening)")
        if self.what == "pty":
            return f"{self.target} -> {self.remote}"
        return self.target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FdRef:
        return cls(**data)


@dataclass
class Peer:
    """A process at the other end of a wait: who could end it."""

    pid: int | None               # None when the kernel shows the other end but not its owner
    relation: str                 # reads before the pid: "write end held by", "child"
    fd: int | None = None         # the waiter's fd this peer was found through
    inside: bool = True           # False: not one of the pids read_waits was given
    address: str | None = None    # for peers known only by address (outside, no pid)

    @property
    def label(self) -> str:
        if self.pid is None:
            return f"a process outside the tree ({self.address})" if self.address else "nobody"
        return f"pid {self.pid}" if self.inside else f"pid {self.pid} (outside the tree)"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Peer:
        return cls(**data)


@dataclass
class ThreadWait:
    """What one thread is doing in the kernel at the time it was read."""

    tid: int
    kind: str                      # one of KINDS
    syscall: str | None = None     # None when not in a system call (running, stopped in user code)
    number: int | None = None
    args: list[int] = field(default_factory=list)
    endless: bool = False
    deadline: float | None = None  # wall-clock epoch seconds
    deadline_exact: bool = True    # False for relative timeouts: the call's start is unknown
    fds: list[FdRef] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    wchan: str | None = None
    state: str | None = None       # "S (sleeping)", "T (stopped)", from status
    voluntary_switches: int | None = None
    polling: bool | None = None    # re-armed in a loop between two samples; None: one sample
    read_at: float = 0.0           # wall-clock time of the reading

    def describe(self, now: float | None = None) -> str:
        """A short line: "futex, no timeout", "read on pipe:[123] <- pid 42"."""
        if self.state and self.state.startswith(("T", "t")):
            head = f"stopped ({self.state.split(' ', 1)[-1].strip('()')})"
            return head + (f", in {self.syscall}" if self.syscall else "")
        if self.kind == "running":
            return "running"
        if self.syscall is None:
            return "not in a system call"
        text = self._what()
        if self.peers:
            text += " <- " + ", ".join(f"{p.relation} {p.label}" for p in self.peers[:3])
            if len(self.peers) > 3:
                text += f" and {len(self.peers) - 3} more"
        text += (" " if self.kind == "sleep" else ", ") + self._when(time.time() if now is None
                                                                     else now)
        if self.polling:
            text += ", re-armed in a loop"
        return text

    def _what(self) -> str:
        name = self.syscall or "?"
        if self.kind == "sleep":
            return "sleeps"
        if self.kind == "child":
            return f"{name} for a child"
        if self.kind == "poll":
            shown = ", ".join(f.label for f in self.fds[:3])
            more = f" +{len(self.fds) - 3}" if len(self.fds) > 3 else ""
            return f"{name} on {len(self.fds)} fd(s)" + (f" ({shown}{more})" if shown else "")
        if self.fds:
            return f"{name} on {self.fds[0].label}"
        return name

    def _when(self, now: float) -> str:
        if self.endless:
            return "no timeout"
        if self.deadline is None:
            return "timeout unknown"
        left = self.deadline - now
        clock = time.strftime("%H:%M:%S", time.localtime(self.deadline))
        word = "until" if self.deadline_exact else "at most until"
        return f"{word} {clock}, in {max(left, 0):.0f} s"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadWait:
        data = dict(data)
        data["fds"] = [FdRef.from_dict(f) for f in data.get("fds", [])]
        data["peers"] = [Peer.from_dict(p) for p in data.get("peers", [])]
        return cls(**data)


@dataclass
class ProcessWaits:
    """The waits of one process's threads, or why they could not be read (never an exception)."""

    pid: int
    comm: str | None = None
    threads: list[ThreadWait] = field(default_factory=list)
    error: str | None = None       # "permission denied", "gone"

    def thread(self, tid: int) -> ThreadWait | None:
        return next((t for t in self.threads if t.tid == tid), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessWaits:
        data = dict(data)
        data["threads"] = [ThreadWait.from_dict(t) for t in data.get("threads", [])]
        return cls(**data)
