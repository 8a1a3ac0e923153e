"""Decode a blocked system call (number and raw arguments from /proc/<pid>/task/<tid>/syscall)
into its name, kind, fds and deadline, driven by the tables in syscalls.toml."""

from __future__ import annotations

import platform
import struct
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

# Reads `size` bytes of the waiting process's memory at an address; None when it cannot.
MemReader = Callable[[int, int], bytes | None]

TIMER_ABSTIME = 1
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
MAX_POLL_FDS = 1024  # a pollfd array is read whole; bigger ones are cut here


@dataclass
class Decoded:
    name: str | None
    kind: str
    fds: list[int] = field(default_factory=list)
    epoll_fd: int | None = None      # the caller lists an epoll fd's watched fds from fdinfo
    endless: bool = False
    deadline: float | None = None
    deadline_exact: bool = True


@cache
def table() -> dict:
    with open(Path(__file__).with_name("syscalls.toml"), "rb") as f:
        return tomllib.load(f)


def syscall_name(number: int, arch: str | None = None) -> str | None:
    return table().get(arch or platform.machine(), {}).get(str(number))


def decode(number: int, args: list[int], mem: MemReader, arch: str | None = None) -> Decoded:
    name = syscall_name(number, arch)
    spec = table()["calls"].get(name) if name else None
    if spec is None:
        return Decoded(name=name or f"syscall {number}", kind="other")
    out = Decoded(name=name, kind=spec["kind"])
    _fds(spec, args, mem, out)
    _timeout(spec, args, mem, out)
    return out


def _fds(spec: dict, args: list[int], mem: MemReader, out: Decoded) -> None:
    form = spec.get("fds")
    if form == "arg":
        out.fds = [signed32(args[spec["fd_arg"]])]
    elif form == "epoll":
        out.epoll_fd = signed32(args[0])
    elif form == "pollfd":
        count = min(args[1], MAX_POLL_FDS)
        raw = mem(args[0], 8 * count) if count else b""
        if raw:  # struct pollfd {int fd; short events; short revents;}
            out.fds = [fd for fd, _e, _r in struct.iter_unpack("ihh", raw) if fd >= 0]
    elif form == "fdset":
        nfds = min(args[0], MAX_POLL_FDS)
        seen: set[int] = set()
        for pointer in args[1:4]:
            raw = mem(pointer, (nfds + 7) // 8) if pointer and nfds else None
            if raw:
                bits = int.from_bytes(raw, "little")
                seen.update(fd for fd in range(nfds) if bits >> fd & 1)
        out.fds = sorted(seen)


def _timeout(spec: dict, args: list[int], mem: MemReader, out: Decoded) -> None:
    form = spec["timeout"]
    if form == "none":
        out.endless = True
    elif form == "unknown":
        return
    elif form == "ms":
        ms = signed32(args[spec["timeout_arg"]])
        if ms < 0:
            out.endless = True
        else:
            _relative(out, ms / 1000)
    elif form in ("timespec", "timeval"):
        _read_relative(out, mem, args[spec["timeout_arg"]], micro=form == "timeval")
    elif form == "abs":
        clock = args[spec["clock_arg"]] if "clock_arg" in spec else spec["clock"]
        _read_absolute(out, mem, args[spec["timeout_arg"]], clock)
    elif form == "clock":
        pointer, clock = args[spec["timeout_arg"]], args[spec["clock_arg"]]
        if args[spec["flags_arg"]] & TIMER_ABSTIME:
            _read_absolute(out, mem, pointer, clock)
        else:
            _read_relative(out, mem, pointer)
    elif form == "futex":
        _futex(out, args, mem)


def _futex(out: Decoded, args: list[int], mem: MemReader) -> None:
    rules = table()["futex"]
    op = args[1]
    how = rules["ops"].get(str(op & rules["cmd_mask"]))
    if how is None:  # a wake, a requeue: not a wait; should not be seen blocked
        return
    if how == "relative":
        _read_relative(out, mem, args[3])
        return
    realtime = how == "realtime" or op & rules["realtime_flag"]
    _read_absolute(out, mem, args[3], CLOCK_REALTIME if realtime else CLOCK_MONOTONIC)


def _timespec(mem: MemReader, pointer: int, micro: bool = False) -> float | None:
    raw = mem(pointer, 16)
    if not raw or len(raw) < 16:
        return None
    seconds, fraction = struct.unpack("qq", raw)
    return seconds + fraction / (1e6 if micro else 1e9)


def _read_relative(out: Decoded, mem: MemReader, pointer: int, micro: bool = False) -> None:
    if not pointer:
        out.endless = True
        return
    value = _timespec(mem, pointer, micro)
    if value is not None:
        _relative(out, value)


def _relative(out: Decoded, seconds: float) -> None:
    # The call started before we looked, at a time /proc does not show: the deadline is at most
    # this far away.
    out.deadline = time.time() + seconds
    out.deadline_exact = False


def _read_absolute(out: Decoded, mem: MemReader, pointer: int, clock: int) -> None:
    if not pointer:
        out.endless = True
        return
    value = _timespec(mem, pointer)
    if value is None:
        return
    try:
        out.deadline = value - time.clock_gettime(clock) + time.time()
    except (OSError, OverflowError):  # a clock this Python cannot read (per-cpu, garbage)
        out.deadline = None


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value
