"""Deadline to report for a 74-process tree (bench_waits.py's tree: a launcher, a native
`sleep`, 8 ranks with 8 forked workers each), side by side in one run, rounds interleaved:

- py-spy dumps 8 at a time (the old fixed pool), no kernel reading;
- py-spy dumps one per core (``os.cpu_count()``), no kernel reading;
- the whole snapshot as a hang's report takes it now: kernel waits read first, then the dumps
  one per core with the native unwinder on the non-Python process in the same pool, labels,
  then the diagnosis.

    .venv/bin/python benchmarks/bench_report.py [--rounds 5]

Prints a Markdown table (median and max over the rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench_waits import start_tree, stop

from pytest_spawnhang.diagnosis import diagnose
from pytest_spawnhang.engine import CaptureOptions, ProcessTracker, snapshot
from pytest_spawnhang.engine.dump import dump_many
from pytest_spawnhang.model import Report


def full_report(tracker: ProcessTracker, launcher: int) -> None:
    report = Report(verdict="hang", trigger="deadline", command=[], duration_s=0.0, started_at="")
    report.processes = snapshot(tracker, launcher, CaptureOptions(), (launcher,))
    report.diagnosis = diagnose(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    launcher, pids = start_tree("futex")
    tracker = ProcessTracker(launcher.pid)
    cores = os.cpu_count() or 2
    variants = {
        "py-spy, 8 at a time, no waits (before)": lambda: dump_many(pids, workers=8),
        f"py-spy, {cores} at a time (one per core), no waits": lambda: dump_many(pids),
        f"snapshot + diagnosis: waits, then {cores} at a time + native unwinder (after)":
            lambda: full_report(tracker, launcher.pid),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, action in variants.items():
                start = time.perf_counter()
                action()
                times[name].append(time.perf_counter() - start)
    finally:
        stop(launcher)
    base = statistics.median(next(iter(times.values())))
    print(f"{len(pids)} processes, {cores} cores, {args.rounds} rounds\n")
    print("| variant | median (s) | max (s) | / before |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {max(values):.3f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
