"""The variant matrix's cost: wall time of the whole slice, and each variant against its floor.

    .venv/bin/python benchmarks/bench_matrix.py [--variants "backend=gloo"] [--python P]

Runs each variant once, one at a time (timings of runs that share 2 cores would measure each
other), under the engine exactly as regression/test_matrix.py does. A variant's floor is the
same backend, world size, start method and launcher running the issue's script without wandb
(repro_scripts/issue_no_wandb.py, itself a variant); the ratio shows what wandb and the fix add.
A hang's time is the stall window plus the dump, not a program's run. Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_spawnhang.engine import run_command
from regression.variants import Variant, all_variants, parse_filter

STALL_S = 5.0
TIMEOUT_S = 120.0
TARGET = 1.3


def floor_of(variant: Variant) -> Variant:
    return replace(variant, placement="none", integration="issue")


def run(variant: Variant, python: str) -> tuple[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-matrix-") as wandb_dir:
        # The engine starts the command with this process's environment.
        os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=wandb_dir)
        report = run_command(variant.command(python), timeout_s=TIMEOUT_S, stall_s=STALL_S)
    if report.survivors:
        raise SystemExit(f"{variant.id}: survivors {report.survivors}")
    return report.verdict, report.duration_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", default="backend=gloo", help="filter, as in pytest")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the variants")
    args = parser.parse_args()
    keep = parse_filter(args.variants)
    selected = [v for v in all_variants() if keep(v.fields())]
    # Floors first (measured even when the filter leaves them out), so each row has its ratio.
    floors = list(dict.fromkeys(floor_of(v) for v in selected))
    variants = floors + [v for v in selected if v not in floors]
    times: dict[Variant, float] = {}
    rows = []
    started = time.monotonic()
    for variant in variants:
        verdict, seconds = run(variant, args.python)
        times[variant] = seconds
        floor = times[floor_of(variant)] if floor_of(variant) != variant else None
        shown = f"{floor:.1f} | {seconds / floor:.2f}" if floor else "- | -"
        rows.append(f"| {variant.id} | {verdict} | {seconds:.1f} | {shown} |")
        print(rows[-1], file=sys.stderr, flush=True)
    total = time.monotonic() - started
    with_floor = [(v, times[v] / times[floor_of(v)]) for v in variants if floor_of(v) != v]
    within = sum(ratio <= TARGET for _, ratio in with_floor)
    print(f"{len(variants)} variants ({args.variants}), one at a time: {total:.0f} s wall\n")
    print(f"{within}/{len(with_floor)} wandb variants within {TARGET}x of their floor\n")
    print("| variant | verdict | seconds | floor (no wandb) | ratio |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
