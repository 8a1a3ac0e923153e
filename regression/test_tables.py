"""The matrix's own tables, checked without running anything: the filter language, pruning and
the expectations (a wrong table would make the matrix assert the wrong thing)."""

from __future__ import annotations

import pytest

from regression.expectations import expected, wandb_era
from regression.variants import FilterError, Variant, all_variants, parse_filter

VARIANTS = list(all_variants())


def ids(expr: str) -> set[str]:
    keep = parse_filter(expr)
    return {v.id for v in VARIANTS if keep(v.fields())}


def test_ids_are_unique_and_counted() -> None:
    # Per backend: mp.spawn 3 sizes x 2 start methods x 5 scripts, torchrun 3 x 5, two nodes 2 x 5.
    assert len({v.id for v in VARIANTS}) == len(VARIANTS) == 2 * (30 + 15 + 10)
    assert "gloo-n2-rank0-spawn-mpspawn-issue" in ids("backend=gloo")


def test_pruned_combinations_do_not_exist() -> None:
    assert not ids("placement=none and integration=fixed")
    assert not ids("launcher=torchrun,torchrun2 and start_method!=popen")
    assert not ids("launcher=torchrun2 and nprocs=1")


@pytest.mark.parametrize(
    ("expr", "count"),
    [
        ("backend=gloo and nprocs=2", 20),
        ("backend=gloo and (nprocs=1 or nprocs=4) and launcher=mpspawn", 20),
        ("backend=gloo and not launcher=mpspawn", 25),
        ("backend=gloo and placement=rank0,group and launcher=mpspawn and nprocs!=1", 16),
    ],
)
def test_filter_selects(expr: str, count: int) -> None:
    assert len(ids(expr)) == count


@pytest.mark.parametrize(
    "expr",
    ["backend", "backend=", "colour=red", "backend=glo", "nprocs=3", "launcher=mpspawn,torchrn",
     "backend=gloo and", "(backend=gloo", "a b", "x;y"],
)
def test_filter_rejects(expr: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(expr)


def test_wandb_eras() -> None:
    assert [wandb_era(v) for v in ("0.10.31", "0.12.21", "0.13.0", "0.31.0", None)] == [
        "legacy", "legacy", "service", "service", "service"
    ]


def test_only_the_issues_legacy_mp_variants_hang() -> None:
    def hangs(v: Variant, era: str) -> bool:
        return expected(v, era).verdict == "hang"

    assert not any(hangs(v, "service") for v in VARIANTS)
    legacy = {v.id for v in VARIANTS if hangs(v, "legacy")}
    assert legacy == ids("integration=issue and placement=rank0,group and launcher=mpspawn")
    assert "gloo-n2-rank0-forkserver-mpspawn-issue" in legacy
