"""Explain a hang: what each thread does, who waits for whom, and which known hang it is.

The stages, each on plain data: ``states.classify`` reads a state per thread from its stack and
``/proc``; ``graph`` draws the wait-for edges and walks them from the launcher to the root
causes; ``rules`` matches the known hangs of ``rules.toml`` on that graph; ``summary`` writes
the lines a person reads first. See docs/diagnosis.md.
"""

from __future__ import annotations

import logging

from ..model import Diagnosis, Report
from .graph import build_edges, collective_roster, root_pids, walk
from .rules import Rule, load_rules, match_rules
from .states import classify
from .summary import summarize

__all__ = ["Rule", "diagnose", "explain", "load_rules"]

logger = logging.getLogger(__name__)


def diagnose(report: Report) -> Diagnosis:
    """``explain``, but never raises: the engine calls it between the dump and the reap, and a
    bug here must neither lose the stacks nor leave the tree running."""
    try:
        return explain(report)
    except Exception as exc:
        logger.exception("diagnosis failed")
        return Diagnosis(summary=f"diagnosis failed ({exc!r}); the stacks below are complete")


def explain(report: Report, rules: tuple[Rule, ...] | None = None) -> Diagnosis:
    """The diagnosis of ``report``, with the packaged rules or ``rules``."""
    scene = classify(report)
    edges = build_edges(scene)
    result = walk(scene, edges)
    matches = match_rules(load_rules() if rules is None else rules, scene, edges,
                          result.depth, collective_roster(scene))
    return Diagnosis(
        summary=summarize(scene, edges, result, matches),
        states=[r.state for r in scene.readings.values()],
        edges=edges,
        chains=result.chains,
        root_causes=root_pids(result),
        findings=[m.finding for m in matches],
    )
