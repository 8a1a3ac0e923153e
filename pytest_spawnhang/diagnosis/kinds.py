"""The one vocabulary of thread states (text, page and JSON say the same words), and how the
kernel's view of a wait (``Thread.wait``, docs/waits.md) maps onto it."""

from __future__ import annotations

import re

from ..model import ProcessRecord, Thread, Wait

# How each kind reads in a sentence, after a process's name.
KIND_TEXT = {
    "join": "waits for a child process to exit: {detail}",
    "join_thread": "joins a thread: {detail}",
    "thread_shutdown": "is at interpreter shutdown: {detail}",
    "collective": "is in the collective {detail}",
    "rendezvous": "is in {detail}",
    "wait_message": "runs {detail}",
    "pipe_write": "is blocked writing: {detail}",
    "queue": "is blocked in {detail}",
    "pipe": "is blocked reading a pipe: {detail}",
    "socket": "is blocked on a socket: {detail}",
    "io": "waits on a pipe or socket: {detail}",
    "lock": "is blocked on a lock or event: {detail}",
    "sleep": "is sleeping in {detail}",
    "busy": "is busy on CPU: {detail}",
    "stopped": "is stopped (SIGSTOP or a debugger): {detail}",
    "exit_function": "is {detail}",
    "atexit": "is running an atexit hook: {detail}",
    "finalizing": "is finalizing the interpreter: {detail}",
    "idle": "is idle: {detail}",
    "exited": "has exited",
    "zombie": "has exited, not yet reaped by its parent (zombie)",
    "not_dumped": "could not be dumped: {detail}",
}

# The kernel's wait channel of a main thread, for a report without per-thread waits.
WCHAN_KINDS = (
    ("sleep", r"nanosleep", None),
    ("lock", r"futex", None),
    ("pipe", r"pipe_read|pipe_write", None),
    ("socket", r"sk_wait|inet_csk_accept|tcp_", None),
    ("join", r"do_wait", "children"),
)

# A kernel wait kind (and, for reads and writes, what the fd is) -> (state kind, waits_for).
KERNEL_KINDS = {
    ("sleep", None): ("sleep", None),
    ("lock", None): ("lock", None),
    ("read", "pipe"): ("pipe", None),
    ("write", "pipe"): ("pipe_write", None),
    ("read", "socket"): ("socket", None),
    ("write", "socket"): ("socket", None),
    ("read", None): ("io", None),
    ("write", None): ("io", None),
    ("poll", None): ("io", None),
    ("accept", None): ("socket", None),
    ("connect", None): ("socket", None),
    ("child", None): ("join", "children"),
    ("running", None): ("busy", None),
    ("stopped", None): ("stopped", None),
    ("other", None): ("idle", None),
}

# The harness's own threads: the watcher, the dump pool, anything running this package's code.
HARNESS_THREAD = re.compile(r"^spawnhang-")
HARNESS_FILE = re.compile(r"[/\\]pytest_spawnhang[/\\]")
_SOCKET = re.compile(r"socket:|\d|\[")  # a unix socket's inode, or TCP/UDP's "host:port"


def kernel_kind(wait: Wait) -> tuple[str, str | None]:
    """The state kind, and whom it waits for, of a thread known only by its kernel wait."""
    fd = next((f for f in wait.fds), "")
    what = "pipe" if fd.startswith("pipe:") else "socket" if _SOCKET.match(fd) else None
    return KERNEL_KINDS.get((wait.kind, what)) or KERNEL_KINDS.get((wait.kind, None)) or (
        "idle", None)


def is_harness(proc: ProcessRecord, thread: Thread) -> bool:
    """A thread of spawnhang itself (in the pytest process): not evidence about the program."""
    if HARNESS_THREAD.search(thread.name or ""):
        return True
    return not proc.is_main(thread) and any(HARNESS_FILE.search(f.file) for f in thread.frames)
