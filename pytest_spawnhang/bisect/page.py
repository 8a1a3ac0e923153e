"""What a bisection leaves on disk: each step's report (by the project's report writer),
``bisect.json`` and ``bisect.html``, a table of versions and verdicts linking each report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jinja2

from ..model import Report

# The project's report writer, imported here only, so a move of it is a one-line change.
from ..render.files import write_report
from ..values import default_report_dir, prepare_dir
from .steps import Outcome, Step

__all__ = ["default_report_dir", "prepare_dir", "write_page", "write_step_report"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def write_step_report(report: Report, directory: Path, step: Step) -> None:
    """Write the run's report under ``directory/<version>/`` and note its paths in ``step``."""
    target = directory / step.version
    write_report(report, target, html=True)
    step.report = f"{step.version}/report.json"
    step.html = f"{step.version}/report.html"


def summary(head: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The content of bisect.json: ``head`` (package, ends, command, ...), the boundary named
    for the search's direction, and every step."""
    regression = head["direction"] == "regression"
    older_side, newer_side = ("good", "bad") if regression else ("bad", "good")
    data = dict(head)
    data.update({"last_good": None, "first_bad": None, "last_bad": None, "first_good": None})
    if outcome.older is not None:
        data[f"last_{older_side}"] = outcome.older
        data[f"first_{newer_side}"] = outcome.newer
    data.update(undecided=outcome.between, stopped=outcome.stopped,
                steps=[dataclasses.asdict(step) for step in outcome.steps])
    return data


def write_page(directory: Path, data: dict[str, Any]) -> Path:
    """Write bisect.json and bisect.html into ``directory``; returns the JSON's path."""
    target = directory / "bisect.json"
    target.write_text(json.dumps(data, indent=1) + "\n")
    (directory / "bisect.html").write_text(_TEMPLATES.get_template("bisect.html.j2").render(
        data=data, steps=sorted(data["steps"], key=lambda s: _order(data, s["version"]))))
    return target


def _order(data: dict[str, Any], version: str) -> int:
    return data["versions"].index(version)
