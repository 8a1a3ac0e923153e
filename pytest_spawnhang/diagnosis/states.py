"""What each thread of each process is doing, read from its stack and from ``/proc``.

The classification is data (``STATE_PATTERNS``), in the style of ``labels.ROLE_PATTERNS``: the
first pattern whose every regex matches some frame of a thread gives its state. A pattern may
also name whom the thread waits for (``waits_for``); ``graph.py`` turns that into edges.
A thread no pattern matches is busy (py-spy saw it on CPU), sleeping (the kernel says so for a
main thread), or idle where its innermost frame is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..model import Frame, ProcessRecord, Report, Thread, ThreadState
from .kinds import KIND_TEXT, WCHAN_KINDS, is_harness, kernel_kind

__all__ = ["KIND_TEXT", "STATE_PATTERNS", "Reading", "Scene", "classify"]

PROCESS = 0  # the thread id of a state that belongs to a whole process (exited, not dumped)


@dataclass(frozen=True)
class StatePattern:
    kind: str
    frames: tuple[str, ...]  # regexes over "function file"; each must match some frame
    detail: str  # template: {function} of the frame the first regex matched, and its groups
    # children, mp_children, ranks, threads, thread, thread:NAME or peers: see graph.build_edges
    waits_for: str | None = None


# Specific before generic: a feeder stuck writing before an idle feeder, joins before locks.
STATE_PATTERNS = (
    StatePattern("join_thread", (r"(^|\.)_finalize_join .*multiprocessing/queues\.py$",),
                 "Queue._finalize_join: joins the queue's feeder thread",
                 "thread:QueueFeederThread"),
    StatePattern("thread_shutdown", (r"(^|\.)_shutdown .*/threading\.py$",),
                 "threading._shutdown: waits for non-daemon threads", "threads"),
    StatePattern("join", (r"(^|\.)join .*torch/multiprocessing/spawn\.py$",),
                 "ProcessContext.join", "ranks"),
    # torchrun's agent polls its workers between sleeps, in this loop.
    StatePattern("join", (r"(^|\.)_invoke_run .*torch/distributed/elastic/agent/",),
                 "torchrun's agent, monitoring its workers", "ranks"),
    StatePattern("join", (r"(^|\.)join .*multiprocessing/process\.py$",),
                 "BaseProcess.join", "mp_children"),
    StatePattern("join", (r"(^|\.)wait .*multiprocessing/popen_\w+\.py$",),
                 "Popen.wait", "mp_children"),
    StatePattern("join", (r"(^|\.)(wait|communicate|call|run) .*/subprocess\.py$",),
                 "subprocess.{function}", "children"),
    StatePattern("join_thread", (r"(^|\.)join .*/threading\.py$",), "Thread.join", "thread"),
    StatePattern("collective", (
        r"^(?P<op>barrier|monitored_barrier|all_reduce\w*|all_gather\w*|reduce_scatter\w*"
        r"|all_to_all\w*|broadcast\w*|reduce|gather\w*|scatter\w*|send|recv|isend|irecv"
        r"|batch_isend_irecv|send_object_list|recv_object_list) .*distributed_c10d\.py$",),
        "{op}", "peers"),
    StatePattern("rendezvous", (
        r"^(init_process_group|_store_based_barrier|rendezvous|_create_c10d_store"
        r"|_new_process_group_helper|new_group) .*torch/distributed/",),
        "{function}: waits for the other ranks to join the group"),
    StatePattern("wait_message", (r"^wandb_internal .*wandb/sdk/internal/internal\.py$",),
                 "wandb's internal loop, until its parent sends the shutdown record"),
    StatePattern("pipe_write", (r"(^|\.)_feed .*multiprocessing/queues\.py$",
                                r"(^|\.)_send\w* .*multiprocessing/connection\.py$"),
                 "queue feeder writing into a full pipe"),
    StatePattern("idle", (r"(^|\.)_feed .*multiprocessing/queues\.py$",),
                 "queue feeder thread with nothing to send"),
    StatePattern("queue", (r"(^|\.)get\w* .*(multiprocessing/queues|/queue)\.py$",),
                 "{function}"),
    StatePattern("pipe", (r"(^|\.)_?(recv\w*|poll) .*multiprocessing/connection\.py$",),
                 "{function}"),
    StatePattern("socket", (r"(^|\.)(accept|recv\w*|send\w*|connect) .*/socket\.py$",),
                 "{function}"),
    StatePattern("io", (r"(^|\.)(select|poll) .*/selectors\.py$",), "{function}"),
    StatePattern("lock", (r"(^|\.)(wait|acquire|wait_for) .*/threading\.py$",), "{function}"),
    StatePattern("lock", (r"(^|\.)(acquire|wait|__enter__) .*multiprocessing/synchronize\.py$",),
                 "{function}"),
)

# Where in a worker's life a thread is; said after the state, and a state of its own where no
# pattern matched (a finalizer or atexit hook running user code).
PHASE_PATTERNS = (
    ("exit_function", r"^_exit_function .*multiprocessing/util\.py$",
     "in multiprocessing's _exit_function"),
)
# Threads that multiprocessing and torch start as daemons: threading._shutdown never waits for
# them, so they are not its targets.
DAEMON_THREADS = r"^(QueueFeederThread|pymp-|pt_|Thread-\d+ \(_(handle_\w+|monitor\w*)\))"
GONE = ("exited", "zombie", "dead")
MAX_NAMES = 4  # processes named in one breath; more are counted


Node = tuple[int, int]  # (pid, thread id); thread id PROCESS for the process as a whole


@dataclass
class Reading:
    """One thread's state, and what the later stages need beyond ``ThreadState``."""

    state: ThreadState
    waits_for: str | None = None
    why: str = ""  # the pattern's detail and phase, without the user frame: an edge's detail
    fields: dict[str, str] = field(default_factory=dict)  # matched frame: function, groups, locals


@dataclass
class Scene:
    """The report indexed for the later stages: one reading per thread and per stackless
    process."""

    report: Report
    procs: dict[int, ProcessRecord]
    readings: dict[Node, Reading] = field(default_factory=dict)
    mains: dict[int, Node] = field(default_factory=dict)  # pid -> its main thread's node
    harness: list[Node] = field(default_factory=list)  # spawnhang's own threads: left out

    def thread(self, node: Node) -> Thread | None:
        proc = self.procs.get(node[0])
        return next((t for t in proc.threads if t.id == node[1]), None) if proc else None

    def main_node(self, pid: int) -> Node:
        """The thread whose end decides whether the process ends, or the process itself."""
        return self.mains.get(pid, (pid, PROCESS))

    def reading(self, node: Node) -> Reading:
        return self.readings.get(node) or Reading(ThreadState(node[0], node[1], "idle", "unknown"))

    def name(self, pid: int) -> str:
        """"rank 0", "launcher", or a role with its pid where the role alone is ambiguous."""
        proc = self.procs.get(pid)
        if proc is None:
            return f"pid {pid}"
        unique = proc.role == "launcher" or (proc.role == "rank" and proc.rank is not None)
        return proc.label if unique else f"{proc.label} (pid {pid})"

    def names(self, pids: list[int]) -> str:
        """"rank 0", "rank 0 and wandb internal (pid 7)"; beyond three, ranks as ranges and the
        rest cut short: "ranks 0-127 and launcher", so that a summary line stays a line."""
        if len(pids) <= 3:
            return and_list([self.name(p) for p in pids])
        ranks = sorted(r for p in pids if (r := self.rank_of(p)) is not None)
        others = [self.name(p) for p in pids if self.rank_of(p) is None]
        if len(others) > MAX_NAMES:
            others[MAX_NAMES - 1:] = [f"{len(others) - MAX_NAMES + 1} more"]
        return and_list(([rank_ranges(ranks)] if ranks else []) + others)

    def rank_of(self, pid: int) -> int | None:
        proc = self.procs.get(pid)
        return proc.rank if proc is not None and proc.role == "rank" else None

    def alive(self, pid: int) -> bool:
        proc = self.procs.get(pid)
        return proc is not None and proc.state not in GONE

    def describe(self, node: Node) -> str:
        """The state as a phrase after the process's name: "is blocked on a lock or event: ..."."""
        state = self.reading(node).state
        return KIND_TEXT.get(state.kind, "is {detail}").format(detail=state.detail)


def and_list(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


def rank_ranges(ranks: list[int]) -> str:
    """"rank 3", "ranks 0-2 and 5"."""
    runs: list[list[int]] = []
    for rank in ranks:
        if runs and rank == runs[-1][-1] + 1:
            runs[-1].append(rank)
        else:
            runs.append([rank])
    parts = [part for run in runs
             for part in ([f"{run[0]}-{run[-1]}"] if len(run) > 2 else map(str, run))]
    return f"rank{'s' if len(ranks) > 1 else ''} {and_list(parts)}"


def where(frame: Frame) -> str:
    return f"{frame.function} ({frame.short_file or frame.file}:{frame.line})"


def user_frame(frames: list[Frame]) -> Frame | None:
    """The innermost frame of the program's own code: not the standard library, not a package."""
    return next((f for f in frames if f.is_python and f.origin == "user"), None)


def classify(report: Report) -> Scene:
    scene = Scene(report, {p.pid: p for p in report.processes})
    for proc in report.processes:
        if not proc.threads:
            kind = _process_kind(proc)
            detail = (proc.dump_error or "") if kind == "not_dumped" else ""
            scene.readings[(proc.pid, PROCESS)] = Reading(
                ThreadState(proc.pid, PROCESS, kind, detail))
        for thread in proc.threads:
            if is_harness(proc, thread):
                scene.harness.append((proc.pid, thread.id))
                continue
            scene.readings[(proc.pid, thread.id)] = _read_thread(proc, thread)
            if proc.is_main(thread):
                scene.mains.setdefault(proc.pid, (proc.pid, thread.id))
        if proc.threads and proc.pid not in scene.mains:
            # Neither name nor OS id known: py-spy lists the main thread last.
            scene.mains[proc.pid] = (proc.pid, proc.threads[-1].id)
    return scene


def _process_kind(proc: ProcessRecord) -> str:
    if proc.state in ("exited", "dead"):
        return "exited"
    return "zombie" if proc.state == "zombie" else "not_dumped"


def _read_thread(proc: ProcessRecord, thread: Thread) -> Reading:
    texts = [f"{f.function} {f.file}" for f in thread.frames]
    user = user_frame(thread.frames)
    phase = next(((k, text) for k, regex, text in PHASE_PATTERNS
                  if any(re.search(regex, t) for t in texts)), None)
    reading = _match_pattern(thread.frames, texts)
    if reading is None:
        kind, detail, waits_for = _fallback(proc, thread, user, phase)
        reading = Reading(ThreadState(proc.pid, thread.id, kind, detail), waits_for, detail)
    elif user is not None:
        reading.state.detail += f" in {where(user)}"
    if phase is not None and reading.state.kind != phase[0]:
        reading.state.detail += f", {phase[1]}"
        reading.why += f", {phase[1]}"
    reading.state.pid, reading.state.thread_id = proc.pid, thread.id
    return reading


def _match_pattern(frames: list[Frame], texts: list[str]) -> Reading | None:
    for pattern in STATE_PATTERNS:
        hits = [next(((i, m) for i, t in enumerate(texts) if (m := re.search(regex, t))), None)
                for regex in pattern.frames]
        if all(hits):
            index, match = hits[0]  # type: ignore[misc]
            # Name the outermost of a run of matching frames: Event.wait, not the
            # Condition.wait it calls; _ConnectionBase.recv, not Connection._recv.
            while index + 1 < len(texts) and (outer := re.search(pattern.frames[0],
                                                                 texts[index + 1])):
                index, match = index + 1, outer
            frame = frames[index]
            fields = {"function": frame.function, **match.groupdict()}
            fields.update({f"local:{v.name}": v.repr or "" for v in frame.locals or []})
            detail = pattern.detail.format(**fields)
            return Reading(ThreadState(0, 0, pattern.kind, detail), pattern.waits_for, detail,
                           fields)
    return None


def _fallback(proc: ProcessRecord, thread: Thread, user: Frame | None,
              phase: tuple[str, str] | None) -> tuple[str, str, str | None]:
    frames = [f for f in thread.frames if f.is_python]
    if not frames and thread.wait is not None and proc.dump_error:
        # Not Python (wandb-core, a shell): the kernel's view is all there is.
        kind, waits_for = kernel_kind(thread.wait)
        return kind, f"{thread.name or 'thread'}: {thread.wait.detail}", waits_for
    if not frames:
        # A dumped thread with no Python frame left: the interpreter is tearing down, and what
        # it destroys (a process group, a C++ thread pool) is only seen with --native.
        native = [f.function for f in thread.frames if not f.function.startswith("0x")][:2]
        return "finalizing", "no Python frames left; " + (
            f"native: {' <- '.join(native)}" if native else "rerun with --native to see more"), None
    top = where(frames[0])
    origin = f"user code: {where(user)}" if user is frames[0] else top
    if thread.active:
        return "busy", origin, None
    if thread.wait is not None and thread.wait.kind not in ("other", "running"):
        kind, waits_for = kernel_kind(thread.wait)
        return kind, f"{origin} (kernel: {thread.wait.detail})", waits_for
    if proc.is_main(thread) and proc.wchan:
        for kind, regex, waits_for in WCHAN_KINDS:
            if re.search(regex, proc.wchan):
                return kind, f"{origin} (kernel: {proc.wchan})", waits_for
    if phase is not None:
        return phase[0], f"{phase[1]}: {top}", None
    if proc.is_main(thread) and frames[-1].function != "<module>":
        # Python calls atexit hooks from C: their stack has no <module> frame under them.
        return "atexit", where(frames[-1]), None
    return "idle", origin, None
