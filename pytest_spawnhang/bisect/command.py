"""The ``bisect`` subcommand's arguments and entry, kept here so that ``cli.py`` only names
them; nothing heavy is imported until the command runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def add_parser(sub, seconds: Callable[[str], float]) -> None:
    """Add ``bisect`` to the subparsers ``sub``; ``seconds`` parses a duration as cli.py does."""
    p = sub.add_parser("bisect", help="find the release of a package that brought a hang "
                       "(or, with --fix, ended it)")
    p.add_argument("package")
    p.add_argument("--good", required=True, help="a version whose run exits")
    p.add_argument("--bad", required=True, help="a version whose run hangs (or fails)")
    p.add_argument("--fix", action="store_true", help="good is the newer end: find the first "
                   "release that exits")
    p.add_argument("--verdict", choices=("hang", "fail"), default="hang",
                   help="what a bad version does (default hang); good ones exit")
    p.add_argument("--timeout", type=seconds, help="deadline of each run in seconds")
    p.add_argument("--stall", type=seconds, help="call a hang once the tree has been idle "
                   "for this many seconds")
    p.add_argument("--index-url", help="package index (default: pip's configuration)")
    p.add_argument("--find-links", action="append", default=[], metavar="DIR",
                   help="also look for packages here (repeatable)")
    p.add_argument("--no-index", action="store_true", help="only --find-links, no index")
    p.add_argument("--with", dest="extras", action="append", default=[], metavar="REQ",
                   help="also install REQ beside each version, e.g. 'protobuf<3.21' (repeatable)")
    p.add_argument("--cache-dir", type=Path, help="where the environments are kept "
                   "(default ~/.cache/spawnhang/bisect)")
    p.add_argument("--report-dir", type=Path, help="where bisect.json, bisect.html and each "
                   "version's report go (default .spawnhang/<timestamp>/)")
    # '+', not REMAINDER: REMAINDER would swallow the options after PACKAGE. After '--' every
    # word is the command's, '-c' included.
    p.add_argument("command", nargs="+", metavar="-- COMMAND", help="the program to run in "
                   "each version's environment; 'python' there is that environment's")


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``bisect`` command; BadInput for input it cannot start from."""
    from .session import Options, run_bisect
    from .versions import IndexOptions

    return run_bisect(Options(
        args.package, args.good, args.bad, args.command, args.verdict, args.fix, args.timeout,
        args.stall, IndexOptions(args.index_url, args.find_links, args.no_index), args.extras,
        args.cache_dir, args.report_dir))
