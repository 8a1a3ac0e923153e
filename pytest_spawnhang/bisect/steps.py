"""The bisection itself: a binary search over ordered versions on a good/bad verdict, with skips
as ``git bisect skip`` has them. It knows nothing of environments or processes: ``probe`` runs
one version and says which side it is on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

SIDES = ("good", "bad", "skip")


@dataclass
class Step:
    """One version tried: its side, the run's verdict, and the time it took."""

    version: str
    side: str  # one of SIDES
    verdict: str  # the run's verdict (exit, hang, fail, ...), or "skip" when it never ran
    duration_s: float = 0.0  # the run under the harness
    env_s: float = 0.0  # building its environment (0 when cached)
    env_cached: bool = False
    reason: str | None = None  # why it was skipped
    report: str | None = None  # report.json of the run, relative to the bisection's directory
    html: str | None = None  # report.html beside it


@dataclass
class Outcome:
    """Where the verdict changes: ``older`` is the newest version on the older end's side and
    ``newer`` the oldest on the other; ``between`` are skipped versions that could be either."""

    steps: list[Step] = field(default_factory=list)
    older: str | None = None
    newer: str | None = None
    between: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the search could not be done (the ends do not hold)


def bisect(versions: list[str], older_side: str, probe: Callable[[str], Step]) -> Outcome:
    """Search ``versions`` (oldest first; the ends included) for the change from ``older_side``
    to the other side. The ends are tried first and must hold."""
    newer_side = "bad" if older_side == "good" else "good"
    outcome = Outcome()
    for index, wanted in ((0, older_side), (len(versions) - 1, newer_side)):
        step = probe(versions[index])
        outcome.steps.append(step)
        if step.side != wanted:
            end = "older" if index == 0 else "newer"
            found = step.reason if step.verdict == "skip" else f"its run ended in {step.verdict}"
            outcome.stopped = (f"the ends do not hold: the {end} end {step.version} should be "
                               f"{wanted}, but {found}")
            return outcome
    low, high, skipped = 0, len(versions) - 1, set()
    while untried := [i for i in range(low + 1, high) if i not in skipped]:
        middle = (low + high) / 2  # the untried version nearest the middle; older on a tie
        index = min(untried, key=lambda i: (abs(i - middle), i))
        step = probe(versions[index])
        outcome.steps.append(step)
        if step.side == "skip":
            skipped.add(index)
        elif step.side == older_side:
            low = index
        else:
            high = index
    outcome.older, outcome.newer = versions[low], versions[high]
    outcome.between = [versions[i] for i in sorted(skipped) if low < i < high]
    return outcome


def steps_needed(count: int) -> int:
    """How many runs a bisection over ``count`` versions (ends included) takes without skips:
    the two ends, then one run per halving of the versions between them."""
    inner, runs = count - 2, 2
    while inner > 0:
        inner //= 2
        runs += 1
    return runs
