"""Stacks of live processes, read with py-spy's JSON output, one pid at a time.

``py-spy dump --subprocesses --json`` keeps only the root process, and one non-Python process in
the tree aborts the whole text dump (py-spy #846), so every pid is dumped on its own, in parallel,
each under its own timeout. A pid that cannot be dumped gets a reason, never an exception.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..model import Frame, Local, Thread

DUMP_TIMEOUT_S = 5.0
NATIVE_DUMP_TIMEOUT_S = 15.0
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|[0-9a-f]{40})\b")
REDACTED = "<redacted>"
NOT_PYTHON_REASON = "not a Python process (py-spy found no interpreter)"


@dataclass
class StackDump:
    pid: int
    threads: list[Thread]
    error: str | None = None
    native: object | None = None  # a non-Python process: what the native unwinder returned


def find_pyspy() -> str | None:
    """py-spy next to this interpreter (a venv's bin/) first, then on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def dump_many(
    pids: list[int], *, native: bool = False, with_locals: bool = False,
    workers: int | None = None, unwind: Callable[[int], object] | None = None,
    not_python: Collection[int] = (), nonblocking: bool = False,
) -> dict[int, StackDump]:
    """Dump every pid in parallel; the result has one entry per pid, dumped or not.

    One py-spy per core: more only queue on the CPUs while each stops its target longer (8 at
    once on 2 cores took twice as long as 2 at a time). Pids in ``not_python`` are not given to
    py-spy; ``unwind`` (a native unwinder) runs on them in the same pool, and its result is the
    dump's ``native``. ``nonblocking`` reads without stopping the targets (py-spy
    --nonblocking): a stack may be torn, but no wait is interrupted (a stopped poll or relative
    sleep comes back as restart_syscall, its fds and deadline lost to the kernel reading)."""
    pyspy = find_pyspy()
    if not pids:
        return {}
    workers = workers or os.cpu_count() or 2

    def one(pid: int) -> StackDump:
        if pid in not_python:
            return StackDump(pid, [], NOT_PYTHON_REASON,
                             native=unwind(pid) if unwind is not None else None)
        return dump_one(pid, pyspy=pyspy, native=native, with_locals=with_locals,
                        nonblocking=nonblocking)

    # Named, so that a report of the harness's own process can tell its threads apart.
    with ThreadPoolExecutor(max_workers=min(workers, len(pids)),
                            thread_name_prefix="spawnhang-dump") as pool:
        return {d.pid: d for d in pool.map(one, pids)}


def dump_one(
    pid: int, *, pyspy: str | None, native: bool = False, with_locals: bool = False,
    nonblocking: bool = False,
) -> StackDump:
    if pyspy is None:
        return StackDump(pid, [], "py-spy missing: install it (pip install py-spy) to get stacks")
    if pid == os.getpid():
        # Reading our own frames needs no ptrace rights and no child process.
        return StackDump(pid, own_threads(with_locals=with_locals))
    cmd = [pyspy, "dump", "--json", "--pid", str(pid)]
    if native:
        cmd.append("--native")
    if with_locals:
        cmd.append("--locals")
    if nonblocking:
        cmd.append("--nonblocking")
    timeout = NATIVE_DUMP_TIMEOUT_S if native else DUMP_TIMEOUT_S
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return StackDump(pid, [], f"py-spy timed out after {timeout:.0f}s")
    except OSError as exc:
        return StackDump(pid, [], f"py-spy could not run: {exc}")
    if done.returncode != 0:
        return StackDump(pid, [], explain_pyspy_error(pid, done.stderr))
    try:
        raw = json.loads(done.stdout)
    except json.JSONDecodeError:
        return StackDump(pid, [], "py-spy printed no JSON: " + done.stdout[:200])
    return StackDump(pid, threads_from_pyspy(raw, with_locals=with_locals))


def explain_pyspy_error(pid: int, stderr: str) -> str:
    """Turn py-spy's error text into a short reason a person can act on."""
    first = next((ln for ln in stderr.splitlines() if ln.startswith("Error:")), stderr.strip())
    first = first.removeprefix("Error: ").strip()
    if not Path(f"/proc/{pid}").exists() or "No such file or directory" in stderr:
        return "exited before it could be dumped"
    if "Permission denied" in stderr or "Operation not permitted" in stderr:
        return (
            "permission denied: py-spy needs ptrace rights (run as root, or with "
            "CAP_SYS_PTRACE, or set kernel.yama.ptrace_scope=0)"
        )
    if "python version" in stderr.lower() or "python interpreter" in stderr.lower():
        return NOT_PYTHON_REASON
    return "py-spy failed: " + first[:300]


def threads_from_pyspy(raw: list[dict], *, with_locals: bool) -> list[Thread]:
    return [
        Thread(
            id=entry.get("thread_id") or 0,
            name=entry.get("thread_name"),
            os_id=entry.get("os_thread_id"),
            active=bool(entry.get("active")),
            owns_gil=bool(entry.get("owns_gil")),
            frames=[
                Frame(
                    function=f.get("name", "?"),
                    file=f.get("filename", "?"),
                    line=f.get("line") or 0,
                    short_file=f.get("short_filename") or "",
                    locals=_locals(f.get("locals")) if with_locals else None,
                )
                for f in entry.get("frames", [])
            ],
        )
        for entry in raw
    ]


def _locals(raw: list[dict] | None) -> list[Local] | None:
    if raw is None:
        return None
    return [Local(item["name"], redact(item["name"], item.get("repr")), bool(item.get("arg")))
            for item in raw]


def redact(name: str, value: str | None) -> str | None:
    """Hide values whose name looks like a secret, and values shaped like well-known tokens."""
    if value is None:
        return None
    if _SECRET_NAME.search(name):
        return REDACTED
    return _SECRET_VALUE.sub(REDACTED, value)


def own_threads(*, with_locals: bool = False) -> list[Thread]:
    """The calling process's threads, read from the interpreter itself."""
    import threading

    names = {t.ident: t for t in threading.enumerate()}
    threads = []
    for ident, top in sys._current_frames().items():
        known = names.get(ident)
        frames = [
            Frame(
                function=frame.f_code.co_qualname,
                file=frame.f_code.co_filename,
                line=frame.f_lineno or 0,
                short_file=os.path.basename(frame.f_code.co_filename),
                locals=[Local(k, redact(k, _safe_repr(v))) for k, v in frame.f_locals.items()]
                if with_locals
                else None,
            )
            for frame in _walk(top)  # innermost first, as py-spy gives them
        ]
        threads.append(
            Thread(
                id=ident,
                name=known.name if known else None,
                os_id=getattr(known, "native_id", None),
                frames=frames,
            )
        )
    return threads


def _walk(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break a dump
        text = f"<repr failed: {type(exc).__name__}>"
    return text[:200]
