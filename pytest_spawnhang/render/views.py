"""What the report page shows of each process and thread, prepared in Python as plain view data
(which frame is the user's, what colour a process gets), so the templates only lay it out."""

from __future__ import annotations

from dataclasses import dataclass

from ..diagnosis.kinds import is_harness
from ..model import Frame, ProcessRecord, Report, Thread, ThreadState

# psutil's status names, folded into the five states the page colours.
_BLOCKED = {"sleeping", "disk-sleep", "idle", "stopped", "tracing-stop", "waiting", "parked"}
_EXITED = {"exited", "dead"}
# States in which a process is merely sleeping or working: not a cause, unless a rule says so.
_NOT_BLAMED = {"sleep", "busy"}

def process_state(proc: ProcessRecord) -> str:
    """One of blocked, busy, exited, zombie, not-dumped: the colour of the process's node."""
    if proc.state == "zombie":
        return "zombie"
    if proc.state in _EXITED:
        return "exited"
    if proc.dump_error:
        return "not-dumped"
    if any(t.active for t in proc.threads) or proc.state == "running":
        return "busy"
    if proc.threads or proc.state in _BLOCKED:
        return "blocked"
    return "not-dumped"


def blamed(report: Report, root_causes: set[int]) -> set[int]:
    """The root causes the page calls causes: without a finding, a process whose every thread
    merely sleeps or works ends a chain but is badged "not blocked", as the summary says ("no
    known hang pattern matched: ... not blocked on another process or thread")."""
    if report.diagnosis.findings:
        return root_causes
    kinds: dict[int, set[str]] = {}
    for state in report.diagnosis.states:
        kinds.setdefault(state.pid, set()).add(state.kind)
    return {pid for pid in root_causes if not kinds.get(pid) or not kinds[pid] <= _NOT_BLAMED}


@dataclass
class FrameView:
    frame: Frame
    origin: str


@dataclass
class ThreadView:
    thread: Thread
    frames: list[FrameView]
    where: FrameView | None  # the innermost frame of the user's code, else the innermost frame
    states: list[ThreadState]


@dataclass
class ProcessView:
    proc: ProcessRecord
    state: str
    root_cause: bool
    threads: list[ThreadView]
    where: FrameView | None  # of its main thread
    left_out: int = 0  # spawnhang's own threads (no state in the diagnosis): folded away


def thread_view(thread: Thread, states: list[ThreadState]) -> ThreadView:
    frames = [FrameView(f, f.origin) for f in thread.frames]
    user = next((f for f in frames if f.origin == "user"), None)
    return ThreadView(thread, frames, user or (frames[0] if frames else None), states)


def process_view(proc: ProcessRecord, report: Report, root_causes: set[int]) -> ProcessView:
    states = [s for s in report.diagnosis.states if s.pid == proc.pid]
    # py-spy lists the main thread last; it is the one people read first.
    ordered = sorted(proc.threads, key=lambda t: not proc.is_main(t))
    threads = [thread_view(t, [s for s in states if s.thread_id in (t.id, t.os_id)])
               for t in ordered]
    # spawnhang's own threads (the watcher, the dump pool) are not the program's.
    shown = [t for t in threads if not is_harness(proc, t.thread)]
    where = shown[0].where if shown else None
    return ProcessView(proc, process_state(proc), proc.pid in root_causes, shown, where,
                       left_out=len(threads) - len(shown))


