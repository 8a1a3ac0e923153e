"""``spawnhang``: the command-line front end over the engine (argparse only, no logic of its own).

    spawnhang run [--timeout S] [--stall S] [--report-dir DIR] [--native] [--locals] -- CMD ...
    spawnhang dump [--report-dir DIR] [--native] [--locals] [--kill] PID
    spawnhang report PATH/report.json [--text]
    spawnhang bisect PACKAGE --good V --bad V [OPTIONS] -- CMD ...   (see bisect/command.py)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from . import engine
from .bisect import command as bisect_command
from .bisect.errors import BadInput
from .model import Report, Trigger, Verdict
from .render.files import html_due, write_report
from .render.html import render_html
from .render.text import render_report
from .values import (
    DEFAULT_STALL_S,
    SecondsError,
    default_report_dir,
    parse_seconds,
    parse_stall,
    prepare_dir,
)

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input: reported as one line on stderr, never a traceback."""

    def __init__(self, message: str, status: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(message)


def _in_seconds(parse: Callable[[str], float | None], also: str = ""
                ) -> Callable[[str], float | None]:
    """An argparse type from a ``values`` parser: its SecondsError becomes one line."""
    def convert(text: str) -> float | None:
        try:
            return parse(text)
        except SecondsError as exc:
            problem = "must be a positive number" if exc.numeric else "not a number"
            raise argparse.ArgumentTypeError(f"{problem} of seconds{also}: {text!r}") from None
    return convert


_seconds = _in_seconds(parse_seconds)
_stall = _in_seconds(parse_stall, ", or off")


def _pid(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spawnhang", description="Catch, explain and clean up hangs in "
                     "multi-process Python programs.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--report-dir", type=Path, help="where report.json and the stacks go "
                       "(default .spawnhang/<timestamp>/)")
        p.add_argument("--native", action="store_true", help="include native (C/C++) frames")
        p.add_argument("--locals", action="store_true", help="include local variables "
                       "(values of secret-looking names are redacted)")
        p.add_argument("--html", action="store_true", help="write report.html even when the "
                       "program exited cleanly")

    run = sub.add_parser("run", help="run a command under a deadline; dump, explain and reap "
                         "its whole process tree if it hangs")
    run.add_argument("--timeout", type=_seconds, help="deadline in seconds (default: none)")
    run.add_argument("--stall", type=_stall, default=DEFAULT_STALL_S, metavar="SECONDS|off",
                     help="hang detection (docs/stall.md): a closed wait is called at once; "
                     "polling without progress once it has lasted this long (default "
                     f"{DEFAULT_STALL_S:g}); off turns detection off")
    run.add_argument("--grace", type=_seconds, default=1.0,
                     help="seconds between SIGTERM and SIGKILL when reaping (default 1)")
    job = run.add_argument_group("a job on several nodes (docs/job.md)")
    job.add_argument("--job", metavar="ID", help="join job ID (default: TORCHELASTIC_RUN_ID "
                     "or SLURM_JOB_ID): any node's hang dumps every node, each writes the merged "
                     "report")
    job.add_argument("--node-rank", type=_count, help="this node's rank (default: torchrun's "
                     "--node-rank, GROUP_RANK, SLURM_NODEID)")
    job.add_argument("--nnodes", type=_count, help="the job's node count (default: torchrun's "
                     "--nnodes, SLURM_NNODES)")
    job.add_argument("--job-store", metavar="HOST:PORT", help="a TCPStore node 0's harness "
                     "hosts (default: torchrun's rendezvous store, or MASTER_PORT+1)")
    job.add_argument("--job-dir", type=Path, metavar="DIR", help="meet in DIR, a directory "
                     "every node sees, instead of a TCPStore")
    job.add_argument("--job-wait", type=_seconds, default=10.0, help="seconds to wait for the "
                     "other nodes' reports before naming them missing (default 10)")
    common(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")

    dump = sub.add_parser("dump", help="dump, label and explain a live process tree")
    dump.add_argument("--kill", action="store_true", help="reap the tree after the dump")
    common(dump)
    dump.add_argument("pid", type=_pid)

    report = sub.add_parser("report", help="render a saved report.json again")
    report.add_argument("path", type=Path, nargs="?")
    report.add_argument("--merge", type=Path, nargs="+", metavar="DIR", help="merge the node "
                        "reports of one job saved in these directories, into --out DIR")
    report.add_argument("--out", type=Path, metavar="DIR", help="with --merge: write the merged "
                        "report there")
    report.add_argument("--html", type=Path, metavar="OUT", help="write the HTML picture to OUT")
    report.add_argument("--text", action="store_true",
                        help="print the text form (the default when --html is not given)")
    bisect_command.add_parser(sub, _seconds)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"run": _run, "dump": _dump, "report": _report,
                "bisect": _bisect}[args.action](args)
    except UsageError as exc:
        print(f"spawnhang: error: {exc}", file=sys.stderr)
        return exc.status


def _report_dir(args: argparse.Namespace) -> Path:
    target = args.report_dir or default_report_dir()
    try:
        return prepare_dir(target)
    except OSError as exc:
        raise UsageError(f"cannot write reports to {target}: {exc.strerror or exc}") from None


def _capture_options(args: argparse.Namespace) -> engine.CaptureOptions:
    return engine.CaptureOptions(native=args.native, with_locals=args.locals,
                                 grace_s=getattr(args, "grace", 1.0))


def _run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("no command given: spawnhang run [OPTIONS] -- COMMAND [ARGS...]")
    program = shutil.which(command[0])
    if program is None:  # statuses as GNU timeout: 127 not found, 126 not runnable
        if os.path.exists(command[0]):
            raise UsageError(f"cannot run {command[0]}: not executable", 126)
        raise UsageError(f"program not found: {command[0]}", 127)
    directory = _report_dir(args)
    coordinator = _join_job(args, command)
    opts = _capture_options(args)
    if coordinator is not None:
        opts.after_dump = coordinator.after_dump

    def on_watch(watch: engine.Watch) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: watch.cancel(signum))
        if coordinator is not None:
            coordinator.start(watch.fire)
            if watch.stall is not None:  # a wait on another node is the job's to judge
                watch.stall.others = coordinator

    report = engine.run_command(command, timeout_s=args.timeout, stall_s=args.stall,
                                opts=opts, on_watch=on_watch)
    merged = coordinator.finish(report) if coordinator is not None else None
    if merged is not None:  # the node's own report beside the job's
        write_report(report, directory / f"node{report.job.node}", args.html)
    _finish(merged or report, directory, args.html)
    return engine.exit_status(report)


def _join_job(args: argparse.Namespace, command: list[str]):
    from .job import Coordinator, JobError, resolve

    try:
        member = resolve(command, job=args.job, node_rank=args.node_rank, nnodes=args.nnodes,
                         job_dir=args.job_dir, store=args.job_store)
    except JobError as exc:
        raise UsageError(str(exc)) from None
    return None if member is None else Coordinator(member, args.job_wait)


def _dump(args: argparse.Namespace) -> int:
    try:
        root = psutil.Process(args.pid)
        command, started_wall = root.cmdline(), root.create_time()
    except psutil.Error:
        raise UsageError(f"no such process: {args.pid}") from None
    directory = _report_dir(args)
    started = time.monotonic()
    tracker = engine.ProcessTracker(root_pid=args.pid)
    tracker.poll()
    if args.kill:
        tracker.track(root)
    report = engine.hang_report(Trigger.ATTACH, command, tracker, args.pid,
                                _capture_options(args), started_wall=started_wall,
                                duration_s=time.time() - started_wall, include=(args.pid,),
                                reap_tree=args.kill)
    report.timings["dump_total_s"] = time.monotonic() - started
    _finish(report, directory, args.html)
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.merge:
        return _merge(args)
    if args.path is None:
        raise UsageError("give a report: spawnhang report PATH/report.json, or --merge DIR...")
    try:
        report = Report.load(args.path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"cannot read report {args.path}: {exc}") from None
    return _show(report, args)


def _show(report: Report, args: argparse.Namespace) -> int:
    """The page to ``--html OUT``, and the text to stdout (the default without ``--html``)."""
    if args.html is not None:
        try:
            args.html.write_text(render_html(report))
        except OSError as exc:
            raise UsageError(f"cannot write {args.html}: {exc.strerror or exc}") from None
    if args.text or args.html is None:
        sys.stdout.write(render_report(report))
    return 0


def _bisect(args: argparse.Namespace) -> int:
    try:
        return bisect_command.run(args)
    except BadInput as exc:
        raise UsageError(str(exc)) from None


def _merge(args: argparse.Namespace) -> int:
    from .job import load_node_reports, merge_reports

    try:
        reports = load_node_reports(args.merge)
        merged = merge_reports(reports, reports[0].job.id, reports[0].job.nnodes)
    except (OSError, ValueError, TypeError, KeyError) as exc:  # JobError is a ValueError
        raise UsageError(f"cannot merge: {exc}") from None
    if args.out is not None:
        write_report(merged, _report_dir(argparse.Namespace(report_dir=args.out)), True)
    return _show(merged, args)


def _finish(report: Report, directory: Path, html: bool) -> None:
    path = write_report(report, directory, html)
    if report.verdict == Verdict.EXIT and not report.stragglers:
        print(f"spawnhang: exit after {report.duration_s:.1f}s; report: {path}", file=sys.stderr)
        return
    print(f"\nspawnhang: {report.verdict} ({report.trigger}) after {report.duration_s:.1f}s",
          file=sys.stderr)
    print(report.diagnosis.summary, file=sys.stderr)
    if report.stragglers:
        print(f"reaped {len(report.stragglers)} process(es) that outlived the program",
              file=sys.stderr)
    if report.survivors:
        print(f"WARNING: could not kill {report.survivors}", file=sys.stderr)
    picture = f"\n        {directory / 'report.html'} (picture)" if html_due(report, html) else ""
    print(f"report: {path}\n        {directory / 'report.txt'} (stacks){picture}",
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
