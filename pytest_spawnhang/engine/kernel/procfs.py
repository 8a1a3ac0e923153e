"""Small, cheap reads of /proc: one open-read-close per file, no parsing beyond what is used.

Every function returns None (or an empty result) for a file that vanished; PermissionError is
left to the caller, which turns it into a per-process error record."""

from __future__ import annotations

import os
import stat

O_ACCMODE = 0o3
ACCESS_MODES = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}


def read(path: str, size: int = 4096) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        return os.read(fd, size).decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    finally:
        os.close(fd)


def tids(pid: int) -> list[int]:
    return sorted(int(name) for name in os.listdir(f"/proc/{pid}/task"))


def syscall(pid: int, tid: int) -> tuple[int | None, list[int]] | str | None:
    """(number, six args) for a thread in a call; (None, []) when not in one (stopped in user
    code: "-1 sp pc"); "running" when on a CPU; None when the thread is gone."""
    text = read(f"/proc/{pid}/task/{tid}/syscall")
    if text is None:
        return None
    fields = text.split()
    if not fields or fields[0] == "running":
        return "running"
    number = int(fields[0])
    if number < 0:
        return (None, [])
    return (number, [int(field, 16) for field in fields[1:7]])


def status(pid: int, tid: int) -> tuple[str | None, int | None]:
    """(State, voluntary_ctxt_switches) of one thread."""
    text = read(f"/proc/{pid}/task/{tid}/status", 8192) or ""
    state = switches = None
    for line in text.splitlines():
        if line.startswith("State:"):
            state = line.split(":", 1)[1].strip()
        elif line.startswith("voluntary_ctxt_switches:"):
            switches = int(line.split(":", 1)[1])
    return state, switches


def wchan(pid: int, tid: int) -> str | None:
    text = read(f"/proc/{pid}/task/{tid}/wchan")
    return text if text and text != "0" else None


def fd_target(pid: int, fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except (FileNotFoundError, ProcessLookupError):
        return None


def fd_links(pid: int) -> list[tuple[int, str, str]]:
    """Every fd of a process as (fd, link target, mode); the mode comes from the link's own
    permission bits, which the kernel sets from the open mode (cheaper than one fdinfo each)."""
    out = []
    try:
        entries = list(os.scandir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return out
    for entry in entries:
        try:
            target = os.readlink(entry.path)
            bits = entry.stat(follow_symlinks=False).st_mode
        except (FileNotFoundError, ProcessLookupError):
            continue
        mode = ("r" if bits & stat.S_IRUSR else "") + ("w" if bits & stat.S_IWUSR else "")
        out.append((int(entry.name), target, mode))
    return out


def fdinfo(pid: int, fd: int) -> dict[str, list[str]]:
    """fdinfo lines by key; keys repeat (an epoll fd has one "tfd" line per watched fd)."""
    out: dict[str, list[str]] = {}
    for line in (read(f"/proc/{pid}/fdinfo/{fd}", 65536) or "").splitlines():
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def open_mode(info: dict[str, list[str]]) -> str | None:
    flags = info.get("flags")
    return ACCESS_MODES.get(int(flags[0], 8) & O_ACCMODE) if flags else None


def epoll_targets(info: dict[str, list[str]]) -> list[int]:
    # "tfd:        5 events:       19 data: ..." — the first number is the watched fd
    return [int(value.split()[0]) for value in info.get("tfd", [])]


def children(pid: int) -> list[int]:
    """Children of every thread (wait4 from any thread reaps them all)."""
    found: set[int] = set()
    for tid in tids(pid):
        found.update(int(c) for c in (read(f"/proc/{pid}/task/{tid}/children") or "").split())
    return sorted(found)


class Memory:
    """/proc/<pid>/mem, opened on first use; reads fail quietly (the address may be unmapped
    by the time it is read, or the kernel may refuse)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.fd: int | None = None

    def __call__(self, address: int, size: int) -> bytes | None:
        try:
            if self.fd is None:
                self.fd = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY)
            return os.pread(self.fd, size, address)
        except (OSError, OverflowError):
            return None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
