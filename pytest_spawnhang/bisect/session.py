"""``spawnhang bisect``: check the input, then bisect, running each version's environment under
the engine's harness, printing each step as it goes and writing the page at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from pytest_spawnhang.engine import CaptureOptions, Watch, exit_status, run_command

from ..model import Report
from .envs import Env, EnvBuilder, InstallError, default_cache_dir, parse_extras
from .errors import BadInput
from .page import default_report_dir, prepare_dir, summary, write_page, write_step_report
from .steps import Step, bisect
from .versions import IndexLookupError, IndexOptions, between, list_versions

CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Options:
    package: str
    good: str
    bad: str
    command: list[str]
    verdict: str = "hang"  # what a bad version does: "hang" or "fail"; good ones exit
    fix: bool = False  # good is the newer end: find the release that ended the bad verdict
    timeout_s: float | None = None
    stall_s: float | None = None
    index: IndexOptions = field(default_factory=IndexOptions)
    extras: list[str] = field(default_factory=list)  # --with: requirements beside the package
    cache_dir: Path | None = None
    report_dir: Path | None = None


def run_bisect(opts: Options) -> int:
    """Bisect as ``opts`` say; returns the exit status (0 found, 1 not decided or the ends do
    not hold, 128 + signal when interrupted). BadInput for input it cannot start from."""
    versions, direction = _check(opts)
    try:
        builder = EnvBuilder(opts.package, opts.index, parse_extras(opts.extras),
                             opts.cache_dir or default_cache_dir())
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    directory = _prepare(opts.report_dir or default_report_dir())
    print(f"spawnhang bisect: {opts.package}, {len(versions)} versions from {versions[0]} to "
          f"{versions[-1]}; bad = {opts.verdict}, good = exit; reports in {directory}",
          file=sys.stderr)
    reports: dict[str, Report] = {}
    interrupted: list[Report] = []

    def probe(version: str) -> Step:
        if interrupted:  # the user asked to stop: try nothing more
            return Step(version, "skip", "skip", reason="not tried: interrupted")
        step = _probe(opts, builder, version, directory, reports)
        if step.verdict == "interrupted":
            interrupted.append(reports[version])
        print(f"  {step.version:>12}  {step.side:<4}  {step.verdict:<11} "
              f"run {step.duration_s:6.1f} s  env "
              f"{'cached' if step.env_cached else f'{step.env_s:.1f} s':>8}"
              f"{'  ' + step.reason if step.reason else ''}", file=sys.stderr)
        return step

    started = time.monotonic()
    older_side = "good" if direction == "regression" else "bad"
    outcome = bisect([str(v) for v in versions], older_side, probe)
    head = {"package": opts.package, "good": opts.good, "bad": opts.bad,
            "verdict": opts.verdict, "direction": direction, "command": opts.command,
            "versions": [str(v) for v in versions], "duration_s": time.monotonic() - started}
    data = summary(head, outcome)
    path = write_page(directory, data)
    if interrupted:
        print("spawnhang bisect: interrupted", file=sys.stderr)
        return exit_status(interrupted[0])
    _conclude(data, reports, path)
    return 1 if outcome.stopped or outcome.between else 0


def _check(opts: Options) -> tuple[list[Version], str]:
    if not opts.command:
        raise BadInput("no command given: spawnhang bisect PACKAGE --good V --bad V -- COMMAND")
    try:
        good, bad = Version(opts.good), Version(opts.bad)
    except InvalidVersion as exc:
        raise BadInput(str(exc)) from None
    if not opts.fix and not good < bad:
        raise BadInput(f"good {good} is not older than bad {bad} (to find the release that "
                       "ended a hang, give --fix)")
    if opts.fix and not bad < good:
        raise BadInput(f"--fix: bad {bad} is not older than good {good}")
    try:
        offered = list_versions(opts.package, opts.index)
    except IndexLookupError as exc:
        raise BadInput(str(exc)) from None
    for name, version in (("--good", good), ("--bad", bad)):
        if version not in offered:
            raise BadInput(f"{name} {version}: the index has no such version of {opts.package}")
    return between(offered, good, bad), ("fix" if opts.fix else "regression")


def _prepare(target: Path) -> Path:
    try:
        return prepare_dir(target)
    except OSError as exc:
        raise BadInput(f"cannot write reports to {target}: {exc.strerror or exc}") from None


def _probe(opts: Options, builder: EnvBuilder, version: str, directory: Path,
           reports: dict[str, Report]) -> Step:
    try:
        env = builder.get(version)
    except InstallError as exc:
        return Step(version, "skip", "skip", reason=str(exc))
    step = Step(version, "skip", "", env_s=env.build_s, env_cached=env.cached)
    try:
        with _activated(env):
            report = run_command(opts.command, timeout_s=opts.timeout_s, stall_s=opts.stall_s,
                                 opts=CaptureOptions(), on_watch=_cancel_on_signals)
    except OSError as exc:  # the command cannot be started in this environment
        step.verdict, step.reason = "skip", f"cannot run {opts.command[0]}: {exc.strerror}"
        return step
    finally:
        _restore_signals()
    reports[version] = report
    step.verdict, step.duration_s = report.verdict, report.duration_s
    if report.verdict == opts.verdict:
        step.side = "bad"
    elif report.verdict == "exit":
        step.side = "good"
    else:
        step.reason = _other_ending(report)
    write_step_report(report, directory, step)
    return step


def _other_ending(report: Report) -> str:
    if report.verdict == "fail":
        return f"exited with status {report.exit_code}"
    return f"ended in {report.verdict} ({report.trigger})"


_saved_handlers: dict[int, object] = {}


def _cancel_on_signals(watch: Watch) -> None:
    """Ctrl-C or SIGTERM during a run ends the run (dumped and reaped) and the bisection."""
    for sig in CANCEL_SIGNALS:
        _saved_handlers[sig] = signal.signal(sig, lambda signum, _frame: watch.cancel(signum))


def _restore_signals() -> None:
    while _saved_handlers:
        sig, handler = _saved_handlers.popitem()
        signal.signal(sig, handler)


@contextlib.contextmanager
def _activated(env: Env) -> Iterator[None]:
    """The engine starts COMMAND with this process's environment: activate ``env`` in it for
    the run, so ``python`` in COMMAND is the version's interpreter."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env.environ(saved))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _conclude(data: dict, reports: dict[str, Report], path: Path) -> None:
    if data["stopped"]:
        print(f"spawnhang bisect: stopped: {data['stopped']}", file=sys.stderr)
    elif data["direction"] == "regression":
        print(f"spawnhang bisect: last good {data['last_good']}, first bad {data['first_bad']}",
              file=sys.stderr)
    else:
        print(f"spawnhang bisect: last bad {data['last_bad']}, first good {data['first_good']}",
              file=sys.stderr)
    if data["undecided"]:
        print(f"  not decided: skipped {', '.join(data['undecided'])}; the change lies in one "
              "of them or in the version after", file=sys.stderr)
    worst = data["first_bad"] or data["last_bad"]
    if worst in reports and reports[worst].verdict != "exit":
        print(f"\n{worst}: {reports[worst].diagnosis.summary}", file=sys.stderr)
    print(f"report: {path}\n        {path.with_suffix('.html')}", file=sys.stderr)
