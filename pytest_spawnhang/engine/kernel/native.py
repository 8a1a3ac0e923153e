"""Native stacks of processes py-spy cannot read (Go's wandb-core, shells, C helpers).

Unwinding attaches with ptrace and stops the process for a moment, so it is not part of
read_waits: call it only for processes that are not Python, under a time limit. eu-stack
(Debian's elfutils) is preferred, gdb is the fallback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest_spawnhang.engine.kernel.procfs as procfs

# Each unwinder: how to run it, how a thread's header and a frame line read in its output.
UNWINDERS = (
    {"tool": "eu-stack", "argv": ["eu-stack", "-p", "{pid}"],
     "thread": re.compile(r"^TID (\d+):"),
     "frame": re.compile(r"^#\d+\s+0x([0-9a-f]+)\s*(\S+)?")},
    {"tool": "gdb", "argv": ["gdb", "-nx", "-batch", "-p", "{pid}", "-ex", "thread apply all bt"],
     "thread": re.compile(r"^Thread \d+ .*\(LWP (\d+)\)"),
     "frame": re.compile(r"^#\d+\s+(?:0x([0-9a-f]+) in )?(\S+)")},
)


@dataclass
class NativeFrame:
    address: int | None
    function: str | None           # None when the unwinder has no symbol for it


@dataclass
class NativeStack:
    pid: int
    tool: str | None = None
    threads: dict[int, list[NativeFrame]] = field(default_factory=dict)
    reason: str | None = None      # why there are no frames: "no unwinder installed", "timed out"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NativeStack:
        threads = {int(tid): [NativeFrame(**f) for f in frames]
                   for tid, frames in data.get("threads", {}).items()}
        return cls(pid=data["pid"], tool=data.get("tool"), threads=threads,
                   reason=data.get("reason"))


def native_stack(pid: int, timeout_s: float = 5.0) -> NativeStack:
    """The native frames of every thread of ``pid``, or the reason there are none."""
    unwinder = next((u for u in UNWINDERS if shutil.which(u["tool"])), None)
    if unwinder is None:
        return NativeStack(pid, reason="no unwinder installed (apt-get install elfutils or gdb)")
    was_stopped = _stopped(pid)
    argv = [part.format(pid=pid) for part in unwinder["argv"]]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        _resume_if_left_stopped(pid, was_stopped)
        return NativeStack(pid, tool=unwinder["tool"], reason=f"timed out after {timeout_s:g} s")
    stack = NativeStack(pid, tool=unwinder["tool"], threads=_parse(done.stdout, unwinder))
    if not stack.threads:
        lines = (done.stderr or done.stdout).strip().splitlines()
        stack.reason = lines[-1] if lines else f"{unwinder['tool']} exited {done.returncode}"
    return stack


def _parse(text: str, unwinder: dict) -> dict[int, list[NativeFrame]]:
    threads: dict[int, list[NativeFrame]] = {}
    current: list[NativeFrame] | None = None
    for line in text.splitlines():
        header = unwinder["thread"].match(line)
        if header:
            current = threads.setdefault(int(header.group(1)), [])
            continue
        frame = unwinder["frame"].match(line)
        if frame and current is not None:
            address, function = frame.group(1), frame.group(2)
            current.append(NativeFrame(int(address, 16) if address else None,
                                       None if function in (None, "??") else function))
    return threads


def _stopped(pid: int) -> bool:
    text = procfs.read(f"/proc/{pid}/stat") or ""
    return text.rpartition(")")[2].split()[:1] == ["T"]


def _resume_if_left_stopped(pid: int, was_stopped: bool) -> None:
    # An unwinder killed mid-attach can leave its target in a group stop it did not have before.
    if not was_stopped and _stopped(pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
