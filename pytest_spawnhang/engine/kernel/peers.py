"""Who is at the other end of an fd, or the child a wait4 waits for.

Built once per reading of a tree: the fd tables of its processes (pipe and socket inodes, with
their open mode) are indexed on first need, and the socket tables are loaded only when a wait
involves a socket."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest_spawnhang.engine.kernel.procfs as procfs
import pytest_spawnhang.engine.kernel.sockets as sockets

from .records import FdRef, Peer
from .syscalls import signed32

INODE = re.compile(r"^(pipe|socket):\[(\d+)\]$")
ANON_KINDS = {"anon_inode:[eventfd]": "eventfd"}
PTY_MASTER, PTY_SLAVES = "/dev/ptmx", "/dev/pts/"
OTHER_END = {"r": "write end held by", "w": "read end held by"}
WANTED_MODE = {"r": "w", "w": "r"}
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3


class TreeIndex:
    def __init__(self, pids: set[int]):
        self.pids = pids
        self._holders: dict[str, list[tuple[int, int, str]]] | None = None
        self._unix: dict[int, sockets.UnixSocket] | None = None
        self._inet: dict[int, sockets.InetSocket] | None = None

    def holders(self, target: str) -> list[tuple[int, int, str]]:
        """(pid, fd, mode) of each process in the tree with `target` ("pipe:[12]") open."""
        if self._holders is None:
            self._holders = defaultdict(list)
            for pid in self.pids:
                for fd, link, mode in procfs.fd_links(pid):
                    if INODE.match(link) or link.startswith(PTY_SLAVES):
                        self._holders[link].append((pid, fd, mode))
        return self._holders.get(target, [])

    def tcp_addresses(self) -> frozenset[str]:
        """The TCP addresses ("host:port") the tree's processes hold, bound or connected."""
        self.holders("")  # indexes every fd of the tree
        assert self._holders is not None
        inet = self.inet()
        inodes = (int(m.group(2)) for m in map(INODE.match, self._holders)
                  if m and m.group(1) == "socket")
        return frozenset(inet[i].local for i in inodes if i in inet and inet[i].kind == "tcp")

    def unix(self) -> dict[int, sockets.UnixSocket]:
        if self._unix is None:
            self._unix = sockets.unix_sockets()
        return self._unix

    def inet(self) -> dict[int, sockets.InetSocket]:
        if self._inet is None:
            self._inet = sockets.inet_sockets()
        return self._inet

    # -- one fd -------------------------------------------------------------------------------

    def describe_fd(self, pid: int, fd: int) -> FdRef:
        target = procfs.fd_target(pid, fd) or "?"
        match = INODE.match(target)
        what = "file" if target.startswith("/") else ANON_KINDS.get(target, "other")
        ref = FdRef(fd=fd, what=what, target=target,
                    inode=int(match.group(2)) if match else None)
        info = procfs.fdinfo(pid, fd)
        ref.mode = procfs.open_mode(info)
        if target == PTY_MASTER and info.get("tty-index"):
            # A pseudo-terminal's master (console capture: wandb 0.10 reads the program's own
            # output this way); its other end is the terminal whose index fdinfo gives.
            ref.what, ref.remote = "pty", f"/dev/pts/{info['tty-index'][0]}"
        elif match and match.group(1) == "pipe":
            ref.what = "pipe"
        elif match:
            self._socket_kind(pid, ref)
        return ref

    def _socket_kind(self, pid: int, ref: FdRef) -> None:
        unix = self.unix().get(ref.inode or 0)
        if unix is not None:
            ref.what, ref.local = "unix", unix.name
            return
        inet = self.inet().get(ref.inode or 0)
        if inet is not None:
            ref.what, ref.local, ref.remote = inet.kind, inet.local, inet.remote

    def peers_of(self, pid: int, ref: FdRef) -> list[Peer]:
        if ref.what == "pipe":
            return self._pipe_peers(pid, ref)
        if ref.what == "unix":
            return self._unix_peers(pid, ref)
        if ref.what in ("tcp", "udp"):
            return self._inet_peers(pid, ref)
        if ref.what == "pty":
            return self._pty_peers(pid, ref)
        return []

    def _pty_peers(self, pid: int, ref: FdRef) -> list[Peer]:
        # Whoever holds the terminal may write to it, the waiter included (its own stdout).
        assert ref.remote is not None
        holders = sorted({p for p, _fd, _mode in self.holders(ref.remote)})
        if holders:
            return [Peer(p, "terminal held by" + (" (itself)" if p == pid else ""), fd=ref.fd)
                    for p in holders]
        return [Peer(None, "terminal held by", fd=ref.fd, inside=False, address=ref.remote)]

    def _pipe_peers(self, pid: int, ref: FdRef) -> list[Peer]:
        # A pipe has one direction: our end's mode says which end the others must hold.
        mine = ref.mode if ref.mode in WANTED_MODE else None
        if mine is None:
            return []
        relation = OTHER_END[mine]
        found = [Peer(p, relation, fd=ref.fd) for p, _fd, mode in self.holders(ref.target)
                 if p != pid and WANTED_MODE[mine] in mode]
        found = list({p.pid: p for p in found}.values())
        if found:
            return found
        # Nobody else in the tree: either the waiter itself keeps the other end open (a read
        # that never sees EOF) or a process outside the tree does.
        if any(p == pid and WANTED_MODE[mine] in mode for p, _fd, mode in self.holders(ref.target)):
            return [Peer(pid, relation + " (itself)", fd=ref.fd)]
        return [Peer(None, relation, fd=ref.fd, inside=False, address=ref.target)]

    def _unix_peers(self, pid: int, ref: FdRef) -> list[Peer]:
        entry = self.unix().get(ref.inode or 0)
        if entry is None or entry.peer is None:
            return []  # a listening or unconnected socket has no peer
        target = f"socket:[{entry.peer}]"
        owners = {p for p, _fd, _mode in self.holders(target) if p != pid}
        if owners:
            return [Peer(p, "peer socket held by", fd=ref.fd) for p in sorted(owners)]
        peer = self.unix().get(entry.peer)
        address = f"{target} {peer.name}" if peer and peer.name else target
        return [Peer(None, "peer socket held by", fd=ref.fd, inside=False, address=address)]

    def _inet_peers(self, pid: int, ref: FdRef) -> list[Peer]:
        if ref.remote is None:
            return []  # listening (accept) or unconnected UDP
        # The other end is the socket whose endpoints are ours swapped (only on this host:
        # loopback, or another address of this network namespace).
        ends = [f"socket:[{s.inode}]" for s in self.inet().values()
                if s.local == ref.remote and s.remote == ref.local]
        holders = {p for end in ends for p, _fd, _mode in self.holders(end)}
        owners = sorted(holders - {pid})
        if owners:
            return [Peer(p, "other end held by", fd=ref.fd) for p in owners]
        if pid in holders:  # a connection to itself (a store server and its own client)
            return [Peer(pid, "other end held by (itself)", fd=ref.fd)]
        relation = "other end held by" if ends else "other end at"  # else: another host
        return [Peer(None, relation, fd=ref.fd, inside=False, address=ref.remote)]

    # -- a child wait -------------------------------------------------------------------------

    def children_waited(self, pid: int, syscall: str, args: list[int]) -> list[Peer]:
        kids = procfs.children(pid)
        wanted = _wanted_child(pid, syscall, args)
        if wanted is not None:
            kids = [k for k in kids if k == wanted]
        return [Peer(k, "child", inside=k in self.pids) for k in kids]


def _wanted_child(pid: int, syscall: str, args: list[int]) -> int | None:
    """The one child a wait names, or None for any child (process groups count as any)."""
    if syscall == "wait4":
        target = signed32(args[0])
        return target if target > 0 else None
    idtype, ident = args[0], signed32(args[1])
    if idtype == P_PID:
        return ident
    if idtype == P_PIDFD:
        found = procfs.fdinfo(pid, ident).get("Pid")
        return int(found[0]) if found else None
    return None

