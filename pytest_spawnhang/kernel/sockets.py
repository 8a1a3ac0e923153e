"""Which socket an inode is and what is at its other end.

Unix sockets: the kernel's socket diagnostics (NETLINK_SOCK_DIAG, UDIAG_SHOW_PEER), one dump
over a raw netlink socket — psutil does not give the peer of a unix socket. TCP/UDP: psutil's
connection table, one call, which also names the owning pid of each endpoint. Both see only the
network namespace of the process reading them."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import psutil

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
UDIAG_SHOW_NAME, UDIAG_SHOW_PEER = 0x1, 0x4
UNIX_DIAG_NAME, UNIX_DIAG_PEER = 0, 2
NLMSG_HEADER = struct.Struct("IHHII")         # len, type, flags, seq, pid
UNIX_DIAG_REQ = struct.Struct("BBHIIIII")     # family, protocol, pad, states, ino, show, cookie
UNIX_DIAG_MSG = struct.Struct("BBBBIII")      # family, type, state, pad, ino, cookie
RTATTR = struct.Struct("HH")


@dataclass
class UnixSocket:
    inode: int
    peer: int | None                 # inode of the connected peer socket
    name: str | None                 # the bound path ("@..." for the abstract namespace)


@dataclass
class InetSocket:
    kind: str                        # "tcp" or "udp"
    fd: int
    pid: int | None
    local: tuple[str, int] | None
    remote: tuple[str, int] | None


def unix_sockets() -> dict[int, UnixSocket]:
    """Every unix socket of this network namespace by inode; empty when netlink is refused."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError:
        return {}
    with sock:
        request = UNIX_DIAG_REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0,
                                     UDIAG_SHOW_NAME | UDIAG_SHOW_PEER, 0, 0)
        header = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY,
                                   NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        try:
            sock.sendto(header + request, (0, 0))
            return _read_dump(sock)
        except OSError:
            return {}


def _read_dump(sock: socket.socket) -> dict[int, UnixSocket]:
    found: dict[int, UnixSocket] = {}
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + NLMSG_HEADER.size <= len(data):
            length, kind, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
            if kind in (NLMSG_DONE, NLMSG_ERROR) or length < NLMSG_HEADER.size:
                return found
            entry = _unix_entry(data[offset + NLMSG_HEADER.size: offset + length])
            found[entry.inode] = entry
            offset += (length + 3) & ~3
        if not data:
            return found


def _unix_entry(body: bytes) -> UnixSocket:
    inode = UNIX_DIAG_MSG.unpack_from(body)[4]
    peer = name = None
    offset = UNIX_DIAG_MSG.size
    while offset + RTATTR.size <= len(body):
        length, kind = RTATTR.unpack_from(body, offset)
        if length < RTATTR.size:
            break
        value = body[offset + RTATTR.size: offset + length]
        if kind == UNIX_DIAG_PEER:
            peer = struct.unpack("I", value[:4])[0]
        elif kind == UNIX_DIAG_NAME:
            name = ("@" + value[1:].decode(errors="replace") if value[:1] == b"\0"
                    else value.decode(errors="replace"))
        offset += (length + 3) & ~3
    return UnixSocket(inode, peer or None, name)


def inet_sockets() -> list[InetSocket]:
    """TCP and UDP endpoints of every process psutil can read (as root: all of them)."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error:
        return []
    return [InetSocket("tcp" if c.type == socket.SOCK_STREAM else "udp", c.fd, c.pid,
                       tuple(c.laddr) if c.laddr else None, tuple(c.raddr) if c.raddr else None)
            for c in conns]


def endpoint(address: tuple[str, int] | None) -> str | None:
    if not address:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
