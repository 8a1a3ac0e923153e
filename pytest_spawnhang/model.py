"""Plain data classes of a report: what every stage passes on, and what ``report.json`` holds.

Field names follow py-spy's JSON where they carry the same thing, so nothing a dump said is lost.
The schema is documented in ``docs/report-schema.md``; bump ``SCHEMA_VERSION`` on any change
that is not a pure addition.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The vocabularies live beside the model and are part of it: re-exported as they are.
from .vocabulary import ROLES as ROLES
from .vocabulary import TRIGGERS as TRIGGERS
from .vocabulary import VERDICTS as VERDICTS
from .vocabulary import Role as Role
from .vocabulary import Trigger as Trigger
from .vocabulary import Verdict as Verdict

SCHEMA_VERSION = 1


# Whose code a frame runs, by its file: the first pattern that matches wins.
_FRAME_ORIGINS = (
    ("internal", re.compile(r"^<")),  # <string> of python -c, <frozen ...>
    ("native", re.compile(r"\.(?:so|dylib|dll)(?:\.[\d.]+)?$")),  # --native: C code
    ("library", re.compile(r"[/\\](?:site|dist)-packages[/\\]")),
    ("stdlib", re.compile(r"[/\\]lib(?:64)?[/\\](?:python|pypy)\d[\d.]*[/\\]")),
)


@dataclass
class Local:
    name: str
    repr: str | None
    arg: bool = False


@dataclass
class Frame:
    function: str
    file: str
    line: int
    short_file: str = ""
    locals: list[Local] | None = None

    @property
    def origin(self) -> str:
        """Whose code this frame runs: "user", "library" (site-packages), "stdlib", "native"
        (a shared library's C code) or "internal" (``<string>``, ``<frozen ...>``)."""
        return next((name for name, pattern in _FRAME_ORIGINS if pattern.search(self.file)),
                    "user")

    @property
    def is_python(self) -> bool:
        # With --native, py-spy interleaves C frames (file: a shared library or a .c source).
        return self.file.endswith(".py") or self.file.startswith("<")


@dataclass
class WaitPeer:
    """A process at the other end of a thread's wait, as the kernel shows it."""

    pid: int | None  # None: an end outside the tree, known only by ``address``
    relation: str  # "write end held by", "child", "peer socket held by"
    inside: bool = True  # False: a process the harness does not track
    address: str | None = None


@dataclass
class Wait:
    """What a thread waits for in the kernel, read from /proc before any dump (docs/waits.md)."""

    kind: str  # sleep, lock, read, write, poll, child, accept, connect, other, running, stopped
    syscall: str | None = None
    endless: bool = False  # no timeout at all
    deadline: float | None = None  # wall-clock epoch seconds, when timed
    deadline_exact: bool = True  # False: an upper bound (relative timeouts)
    left_s: float | None = None  # seconds from the reading to the deadline
    detail: str = ""  # "futex, no timeout", "sleeps until 12:03:07, in 41 s"
    fds: list[str] = field(default_factory=list)  # "pipe:[123]", "127.0.0.1:29500 -> ..."
    peers: list[WaitPeer] = field(default_factory=list)
    polling: bool | None = None  # re-armed in a loop between two readings; None: unknown


@dataclass
class Thread:
    id: int
    name: str | None
    os_id: int | None = None
    active: bool = False
    owns_gil: bool = False
    frames: list[Frame] = field(default_factory=list)  # innermost first
    wait: Wait | None = None  # None: not read (no /proc access, or an old report)


@dataclass
class ProcessRecord:
    pid: int
    ppid: int
    cmdline: list[str]
    name: str = ""
    create_time: float = 0.0
    role: str = "other"
    rank: int | None = None
    rank_source: str | None = None  # "env" (RANK) or "spawn-order"
    worker_id: int | None = None  # a DataLoader worker's id (its start order under its parent)
    exit_code: int | None = None  # known only for processes the harness waited for
    state: str | None = None  # /proc state at dump time ("sleeping", "zombie", ...)
    wchan: str | None = None
    cpu_s: float | None = None
    threads: list[Thread] = field(default_factory=list)
    dump_error: str | None = None
    waits_error: str | None = None  # why /proc gave no waits ("permission denied: ...")
    native_error: str | None = None  # a non-Python process: why it has no native frames
    node: int | None = None  # in a job: the node (machine) the process ran on, and its host
    host: str | None = None
    local_pid: int | None = None  # set when a merged report renumbered a pid another node had

    def is_main(self, thread: Thread) -> bool:
        """Whether ``thread`` is this process's main thread. py-spy cannot always read a
        thread's name (at interpreter exit it is None); the main thread's OS id is the pid."""
        return thread.os_id == self.pid or thread.name == "MainThread"

    @property
    def label(self) -> str:
        if self.role == "rank" and self.rank is not None:
            return f"rank {self.rank}"
        label = self.role.replace("_", " ")
        return label if self.worker_id is None else f"{label} {self.worker_id}"


@dataclass
class WaitEdge:
    """``waiter`` cannot proceed until ``target`` acts (exits, sends, joins)."""

    waiter_pid: int
    target_pid: int | None
    kind: str  # "join", "collective", "thread", "queue", ...
    detail: str = ""
    waiter_thread: int | None = None
    target_thread: int | None = None


@dataclass
class ThreadState:
    pid: int
    thread_id: int
    kind: str
    detail: str = ""


@dataclass
class Finding:
    rule: str
    title: str
    explanation: str
    advice: str
    pids: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)


@dataclass
class Diagnosis:
    summary: str = ""
    states: list[ThreadState] = field(default_factory=list)
    edges: list[WaitEdge] = field(default_factory=list)
    chains: list[list[int]] = field(default_factory=list)  # pids, launcher first, root cause last
    root_causes: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Failure:
    """A crash: which process or rank, and the tail of its traceback."""

    excerpt: str
    rank: int | None = None
    pid: int | None = None


@dataclass
class Straggler:
    pid: int
    cmdline: list[str]
    role: str = "other"


@dataclass
class JobNode:
    """One node of a job, as its harness told it (or ``state: "missing"`` if it never did)."""

    node: int
    host: str = ""
    state: str = "reported"  # "reported", "missing"
    verdict: str | None = None
    trigger: str | None = None


@dataclass
class JobCollective:
    """One operation the job's ranks are in, across all nodes, and the ranks that are not in it."""

    op: str
    ranks: list[int] = field(default_factory=list)
    absent: list[int] = field(default_factory=list)  # known ranks of the job elsewhere


@dataclass
class Job:
    """A job on several nodes: in a node's own report, ``node`` is that node; in the merged
    report, ``node`` is null and ``nodes`` lists every node."""

    id: str
    nnodes: int
    node: int | None = None
    host: str = ""
    first_node: int | None = None  # the node whose own trigger fired the others
    first_at: float | None = None  # when it fired (epoch seconds, by that node's clock)
    nodes: list[JobNode] = field(default_factory=list)
    collectives: list[JobCollective] = field(default_factory=list)
    root_cause_ranks: list[int] = field(default_factory=list)


@dataclass
class Report:
    verdict: str
    trigger: str
    command: list[str]
    duration_s: float
    started_at: str
    cwd: str = ""
    exit_code: int | None = None
    timeout_s: float | None = None
    stall_s: float | None = None
    processes: list[ProcessRecord] = field(default_factory=list)
    diagnosis: Diagnosis = field(default_factory=Diagnosis)
    failure: Failure | None = None
    stragglers: list[Straggler] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)  # what made the trigger fire
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent per stage
    job: Job | None = None  # a job on several nodes (spawnhang run --job)
    schema_version: int = SCHEMA_VERSION

    def process(self, pid: int) -> ProcessRecord | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def by_role(self, role: str) -> list[ProcessRecord]:
        return [p for p in self.processes if p.role == role]

    def rank(self, rank: int) -> ProcessRecord | None:
        return next((p for p in self.processes if p.role == "rank" and p.rank == rank), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return _build(cls, data)

    @classmethod
    def load(cls, path: str | Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _build(cls: Any, data: Any) -> Any:
    """Rebuild nested dataclasses from ``asdict`` output, ignoring unknown keys (newer writers)."""
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        if name not in hints:
            continue
        kwargs[name] = _coerce(hints[name], value)
    return cls(**kwargs)


_NESTED = {cls.__name__: cls for cls in (
    Local, Frame, WaitPeer, Wait, Thread, ProcessRecord, WaitEdge, ThreadState, Finding,
    Diagnosis, Failure, Straggler, JobNode, JobCollective, Job)}


def _coerce(hint: str, value: Any) -> Any:
    if value is None:
        return None
    for name, klass in _NESTED.items():
        if f"list[{name}]" in hint:
            return [_build(klass, item) for item in value]
        if hint.split(" ")[0] == name:
            return _build(klass, value)
    return value
