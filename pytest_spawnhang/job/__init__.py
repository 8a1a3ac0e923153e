"""A job on several machines: each node's ``spawnhang run`` joins the others, any node's hang
fires them all, and every node writes the merged report. The CLI's door into it; see docs/job.md.

Imports torch (for its TCPStore) only when a job actually meets through one.
"""

from __future__ import annotations

from pathlib import Path

from pytest_spawnhang.model import Report

from .coordinator import Coordinator
from .membership import JobError, Membership, resolve
from .merge import merge_reports

__all__ = ["Coordinator", "JobError", "Membership", "load_node_reports", "merge_reports",
           "resolve"]


def load_node_reports(paths: list[Path]) -> list[Report]:
    """Node reports from report directories (or report.json files): a directory holding a
    merged report gives its ``node<N>/report.json``."""
    found = []
    for path in paths:
        path = Path(path)
        candidates = [path] if path.is_file() else [path / "report.json",
                                                    *sorted(path.glob("node*/report.json"))]
        for candidate in candidates:
            if not candidate.is_file():
                continue
            report = Report.load(candidate)
            if report.job is not None and report.job.node is not None:
                found.append(report)
                break
        else:
            raise JobError(f"no node report (from spawnhang run --job) in {path}")
    return found
