"""The ``spawnhang`` fixture: run a command, or a ``torch.multiprocessing.spawn`` target, through
the engine from inside a test, and assert on its report.

It works with or without ``--spawnhang``: it is an explicit call, not a watch.
"""

from __future__ import annotations

import base64
import itertools
import pickle
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from .. import engine
from ..model import Report
from ..render.files import write_report
from .settings import Settings, node_dir

_SPAWN = """\
import base64, importlib, pickle, sys
sys.path[:0] = {path!r}
import torch.multiprocessing as mp
target = importlib.import_module({module!r})
for name in {qualname!r}.split("."):
    target = getattr(target, name)
mp.spawn(target, args=pickle.loads(base64.b64decode({args!r})), nprocs={nprocs})
"""


class Result:
    """The engine's ``Report`` of one run (its fields are readable here too), with the
    assertions tests want, whose messages carry the diagnosis and the report's path."""

    def __init__(self, report: Report, path: Path | None) -> None:
        self.report = report
        self.path = path  # report.json, written unless the program simply exited

    def __getattr__(self, name: str) -> Any:
        return getattr(self.report, name)

    def __repr__(self) -> str:
        return f"<spawnhang Result {self.report.verdict} after {self.report.duration_s:.1f}s>"

    def assert_exits(self) -> None:
        """The program ended with status 0 and left no process behind."""
        if self.report.verdict != "exit" or self.report.stragglers:
            raise AssertionError(self._explain("expected a clean exit"))

    def assert_hangs(self, frame: str | None = None) -> None:
        """The program hung; with ``frame``, some thread of some process waits in a frame whose
        ``function (file:line)`` contains that text (a function name, a file, ``file.py:12``)."""
        if self.report.verdict != "hang":
            raise AssertionError(self._explain("expected a hang"))
        if frame is not None and not any(frame in where for where in self.frames()):
            raise AssertionError(self._explain(f"expected a hang with a frame matching {frame!r}"))

    def frames(self) -> list[str]:
        """Every frame of every dumped thread, as ``function (file:line)``."""
        return [f"{f.function} ({f.file}:{f.line})" for p in self.report.processes
                for t in p.threads for f in t.frames]

    def _explain(self, wanted: str) -> str:
        lines = [f"{wanted}, got {self.report.verdict} ({self.report.trigger}) after "
                 f"{self.report.duration_s:.1f}s", self.report.diagnosis.summary]
        if self.report.failure is not None:
            lines.append(self.report.failure.excerpt)
        if self.report.stragglers:
            lines.append(f"processes left behind: {[s.pid for s in self.report.stragglers]}")
        if self.path is not None:
            lines.append(f"report: {self.path}")
        return "\n".join(line for line in lines if line)


class Runner:
    """What the ``spawnhang`` fixture returns."""

    def __init__(self, node: pytest.Item, settings: Settings) -> None:
        self.node = node
        self.settings = settings
        self._runs = itertools.count(1)

    def run(self, command: Sequence[str], *, timeout: float | None = None,
            stall: float | None = None) -> Result:
        """Run ``command`` to its end or its hang (``timeout``, default ``--spawnhang-timeout``;
        ``stall``, default ``--spawnhang-stall``); nothing it started survives."""
        report = engine.run_command(
            list(command), timeout_s=timeout or self.settings.timeout_s,
            stall_s=stall or self.settings.stall_s,
            opts=engine.CaptureOptions(native=self.settings.native))
        path, run = None, next(self._runs)
        if report.verdict != "exit" or report.stragglers:
            directory = node_dir(self.settings.report_dir, self.node.nodeid) / f"run-{run}"
            shutil.rmtree(directory, ignore_errors=True)  # an earlier session's run
            path = write_report(report, directory)
        return Result(report, path)

    def spawn(self, target: Callable[..., object], *, args: tuple[object, ...] = (),
              nprocs: int = 2, timeout: float | None = None,
              stall: float | None = None) -> Result:
        """Run ``torch.multiprocessing.spawn(target, args, nprocs)`` in a fresh interpreter
        under the engine. ``target`` must be importable (a module-level function) and ``args``
        picklable, as for ``mp.spawn`` itself."""
        code = _SPAWN.format(
            path=[p for p in sys.path if p], module=target.__module__,
            qualname=target.__qualname__, nprocs=int(nprocs),
            args=base64.b64encode(pickle.dumps(tuple(args))).decode())
        return self.run([sys.executable, "-c", code], timeout=timeout, stall=stall)
