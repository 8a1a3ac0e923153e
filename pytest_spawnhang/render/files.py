"""Write a report to its directory: report.json, report.txt and one text dump per process."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..model import Report, Verdict
from .text import render_process, render_report


def html_due(report: Report, html: bool = False) -> bool:
    """Whether ``write_report`` writes the HTML picture: for every run that did not simply
    exit, and for any run when ``html`` is set."""
    return html or report.verdict != Verdict.EXIT


def write_report(report: Report, directory: str | Path, html: bool = False) -> Path:
    """Write every artefact of ``report``; returns the path of report.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for proc in report.processes:
        if proc.threads or proc.dump_error:
            label = re.sub(r"[^A-Za-z0-9]+", "-", proc.label).strip("-")
            (directory / f"pid{proc.pid}-{label}.txt").write_text(render_process(proc) + "\n")
    (directory / "report.txt").write_text(render_report(report))
    if html_due(report, html):
        from .html import render_html  # jinja2 costs ~40 ms: only when a page is due

        (directory / "report.html").write_text(render_html(report))
    target = directory / "report.json"
    target.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return target
