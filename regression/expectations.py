"""What each variant must do, as one table of rules over the variant's fields plus ``wandb``.

``wandb`` is the era of the installed wandb, not a variant field: ``legacy`` (before 0.13, when
``wandb.init`` runs its internal process as a non-daemon multiprocessing child of the caller) or
``service`` (0.13 and later: a service started with Popen, since 0.18 the Go ``wandb-core``).
The first rule whose ``when`` matches decides; ``when`` uses the ``--spawnhang-variants`` language.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from regression.variants import FIELDS, Predicate, Variant, parse_filter

WANDB_FIELD = "wandb"
SERVICE_SINCE = (0, 13)


@dataclass(frozen=True)
class Expectation:
    when: str
    verdict: str  # "exit" or "hang"
    why: str


EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation(
        when="wandb=legacy and integration=issue and placement=rank0,group "
        "and launcher=mpspawn",
        verdict="hang",
        why="a torch.multiprocessing worker ends through multiprocessing's _bootstrap, whose "
        "_exit_function joins every non-daemon child, and wandb 0.10's internal process never "
        "ends without wandb.finish(): rank 0 (every rank, for group) waits forever and the "
        "launcher waits in ProcessContext.join. Measured for spawn and forkserver alike.",
    ),
    Expectation(
        when="wandb=legacy and integration=issue",
        verdict="exit",
        why="torchrun runs each rank as a plain `python script.py` (Popen): the rank is a "
        "__main__ process, whose atexit hooks let wandb finish its run before multiprocessing "
        "joins the child; so is no wandb at all.",
    ),
    Expectation(
        when="integration=fixed",
        verdict="exit",
        why="@clean_exit finishes the wandb run, destroys the process group and joins (then "
        "terminates) leftover children, however the worker ends, on every wandb version.",
    ),
    Expectation(
        when="wandb=service",
        verdict="exit",
        why="since 0.13 wandb's service is a Popen'd process, not a multiprocessing child, so "
        "nothing joins it at a worker's exit.",
    ),
)


def wandb_era(version: str | None) -> str:
    """``legacy`` or ``service`` for a wandb version string; no wandb at all counts as service,
    since nothing can then hold a worker at exit."""
    if version is None:
        return "service"
    major, minor = (int(part) for part in version.split(".")[:2])
    return "legacy" if (major, minor) < SERVICE_SINCE else "service"


@cache
def _compiled(when: str) -> Predicate:
    return parse_filter(when, (*FIELDS, WANDB_FIELD))


def expected(variant: Variant, era: str) -> Expectation:
    context = {**variant.fields(), WANDB_FIELD: era}
    for rule in EXPECTATIONS:
        if _compiled(rule.when)(context):
            return rule
    raise LookupError(f"no expectation for {variant.id} with wandb {era}")
