"""The variant matrix's cost: wall time of the whole slice, and each variant against its floor.

    .venv/bin/python benchmarks/bench_matrix.py [--variants "backend=gloo"] [--repeat 3]

Runs the variants one at a time (timings of runs that share 2 cores would measure each other),
under the engine exactly as regression/test_matrix.py does, ``--repeat`` rounds of the whole
slice, so that a variant and its floor meet the same machine; times are medians over the rounds.
A variant's floor is the same backend, world size, start method and launcher running the issue's
script without wandb (repro_scripts/issue_no_wandb.py, itself a variant); the ratio shows what
wandb and the fix add, and a fixed variant's time against its issue variant what the fix alone
adds. A hang's time is the stall window plus the dump, not a program's run. Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the whole slice")
    args = parser.parse_args()
    keep = parse_filter(args.variants)
    selected = [v for v in all_variants() if keep(v.fields())]
    # Floors first (measured even when the filter leaves them out), so each row has its ratio.
    floors = list(dict.fromkeys(floor_of(v) for v in selected))
    variants = floors + [v for v in selected if v not in floors]
    samples: dict[Variant, list[float]] = {v: [] for v in variants}
    verdicts: dict[Variant, set[str]] = {v: set() for v in variants}
    started = time.monotonic()
    for round_number in range(args.repeat):
        for variant in variants:
            verdict, seconds = run(variant, args.python)
            samples[variant].append(seconds)
            verdicts[variant].add(verdict)
            print(f"round {round_number + 1}: {variant.id} {verdict} {seconds:.1f}s",
                  file=sys.stderr, flush=True)
    total = time.monotonic() - started
    times = {v: statistics.median(samples[v]) for v in variants}
    rows, ratios = [], []
    for variant in variants:
        floor = times[floor_of(variant)] if floor_of(variant) != variant else None
        if floor:
            ratios.append(times[variant] / floor)
        issue = replace(variant, integration="issue")
        fix = (f"{times[variant] / times[issue]:.2f}"
               if variant.integration == "fixed" and issue in times else "-")
        shown = f"{floor:.1f} | {times[variant] / floor:.2f}" if floor else "- | -"
        rows.append(f"| {variant.id} | {'/'.join(sorted(verdicts[variant]))} | "
                    f"{times[variant]:.1f} | {shown} | {fix} |")
    within = sum(ratio <= TARGET for ratio in ratios)
    print(f"{len(variants)} variants ({args.variants}), {args.repeat} round(s), one at a time: "
          f"{total:.0f} s wall\n")
    print(f"{within}/{len(ratios)} wandb variants within {TARGET}x of their floor "
          "(median seconds)\n")
    print("| variant | verdict | seconds | floor (no wandb) | ratio | fixed / issue |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
