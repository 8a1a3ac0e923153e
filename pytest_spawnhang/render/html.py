"""The HTML form of a report: one self-contained page (inline CSS and SVG, no script, no network).

``render_html`` is a pure function from a Report to a string. Python prepares plain view data
(which frame is the user's, what colour a process gets, where each node of the tree drawing
sits); the Jinja2 templates in ``templates/`` only lay it out, with autoescaping on, because
everything that came out of a dumped process (command lines, thread names, file names, locals)
is untrusted text.

Every field of the diagnosis may be empty: the page draws what is there and says what is not.
"""

from __future__ import annotations

import functools
import itertools

import jinja2

from ..model import Report, WaitEdge
from .layout import NODE_H, NODE_W, layout
from .views import blamed, process_view

TRIGGER_TEXT = {
    "deadline": "the deadline{timeout} passed",
    "stall": "the whole tree was idle and unchanged{stall}",
    "cancelled": "the run was cancelled (Ctrl-C or SIGTERM)",
    "exit": "the program exited{status}",
    "attach": "a snapshot of a live process tree (spawnhang dump)",
}



def wait_edges(report: Report) -> list[WaitEdge]:
    """The diagnosis's edges, plus one per link of a chain that no edge covers: a chain lists
    who waits for whom even when the rule that made it did not record edges."""
    edges = list(report.diagnosis.edges)
    covered = {(e.waiter_pid, e.target_pid) for e in edges}
    for chain in report.diagnosis.chains:
        for waiter, target in itertools.pairwise(chain):
            if (waiter, target) not in covered:
                covered.add((waiter, target))
                edges.append(WaitEdge(waiter, target, kind="waits"))
    return edges


def trigger_text(report: Report) -> str:
    template = TRIGGER_TEXT.get(report.trigger, report.trigger)
    return template.format(
        timeout=f" of {report.timeout_s:g} s" if report.timeout_s else "",
        stall=f" for {report.stall_s:g} s" if report.stall_s else "",
        status=f" with status {report.exit_code}" if report.exit_code is not None else "",
    )


def duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_spawnhang.render", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration_text
    return env


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    diagnosis = report.diagnosis
    root_causes = set(diagnosis.root_causes) | {chain[-1] for chain in diagnosis.chains if chain}
    views = {p.pid: process_view(p, report, root_causes) for p in report.processes}
    edges = wait_edges(report)
    named = [*root_causes, *(pid for e in edges for pid in (e.waiter_pid, e.target_pid))]
    ghosts = sorted({pid for pid in named if pid is not None and pid not in views})
    drawing = layout(views, edges, ghosts)
    order = [node.view for node in drawing.nodes if node.view is not None]
    return _environment().get_template("report.html.j2").render(
        report=report,
        trigger=trigger_text(report),
        processes=order,
        views=views,
        edges=edges,
        root_causes=sorted(root_causes),
        blamed=blamed(report, root_causes),
        drawing=drawing,
        node_w=NODE_W,
        node_h=NODE_H,
        state_names=("blocked", "busy", "exited", "zombie", "not-dumped"),
        origin_names={"stdlib": "stdlib", "library": "site-packages", "native": "native",
                      "internal": "internal"},
    )
