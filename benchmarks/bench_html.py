"""Render time and file size of the HTML report for a 74-process tree.

The tree is real: a launcher spawns 8 ranks, each rank forks 8 loader workers (as a DataLoader
with ``num_workers=8`` does), and all of them wait forever. ``spawnhang run --stall`` records it
with locals, then this script times ``render_html`` on that report and on the same report with
the locals dropped, and prints a markdown table.

    .venv/bin/python benchmarks/bench_html.py [--report PATH/report.json] [--repeat 20]

Some wait-for edges and root causes are added by hand (the diagnosis does not yet write them),
so that the drawing has arrows to lay out; they are marked as synthesised in the output.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pytest_spawnhang.model import Report, WaitEdge
from pytest_spawnhang.render.html import render_html

RANKS, WORKERS_PER_RANK = 8, 8


def loader_worker() -> None:
    threading.Event().wait()


def rank_main() -> None:
    fork = mp.get_context("fork")
    workers = [fork.Process(target=loader_worker, name=f"loader-{i}")
               for i in range(WORKERS_PER_RANK)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def run_tree() -> None:
    spawn = mp.get_context("spawn")
    ranks = [spawn.Process(target=rank_main, name=f"rank-{r}") for r in range(RANKS)]
    for rank in ranks:
        rank.start()
    for rank in ranks:
        rank.join()


def record(directory: Path) -> Path:
    """Run the tree under spawnhang until it stalls; return the path of its report.json."""
    spawnhang = [sys.executable, "-m", "pytest_spawnhang"]
    subprocess.run([*spawnhang, "run", "--stall", "3", "--timeout", "180", "--locals",
                    "--report-dir", str(directory), "--", sys.executable, __file__, "--tree"],
                   check=False, capture_output=True)
    return directory / "report.json"


def add_synthesised_diagnosis(report: Report) -> None:
    """The launcher joins each rank, each rank joins its first loader worker (synthesised)."""
    launcher = report.by_role("launcher")[0]
    for rank in report.by_role("rank"):
        report.diagnosis.edges.append(WaitEdge(launcher.pid, rank.pid, "join"))
        workers = [p for p in report.processes if p.ppid == rank.pid]
        if workers:
            report.diagnosis.edges.append(WaitEdge(rank.pid, workers[0].pid, "join"))
            report.diagnosis.root_causes.append(workers[0].pid)


def without_locals(report: Report) -> Report:
    stripped = Report.from_dict(report.to_dict())
    for proc in stripped.processes:
        for thread in proc.threads:
            for frame in thread.frames:
                frame.locals = None
    return stripped


def measure(report: Report, repeat: int) -> tuple[float, float, int]:
    """Median and worst render time in ms over ``repeat`` renders, and the page size in bytes."""
    times, page = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        page = render_html(report)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), len(page.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="a recorded report.json (default: record one)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tree", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tree:
        run_tree()
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.report or record(Path(tmp) / "report")
        report = Report.load(path)
    add_synthesised_diagnosis(report)
    threads = sum(len(p.threads) for p in report.processes)
    frames = sum(len(t.frames) for p in report.processes for t in p.threads)
    print(f"report: {len(report.processes)} processes, {threads} threads, {frames} frames "
          f"({'recorded now' if args.report is None else path}); edges and root causes "
          "synthesised\n")
    start = time.perf_counter()
    render_html(report)  # the first call also loads and compiles the templates
    print(f"first render, templates compiled: {(time.perf_counter() - start) * 1000:.0f} ms\n")
    print("| report | render, median (ms) | render, worst (ms) | size (KiB) |")
    print("|---|---:|---:|---:|")
    for name, variant in (("with locals", report), ("without locals", without_locals(report))):
        median, worst, size = measure(variant, args.repeat)
        print(f"| {name} | {median:.1f} | {worst:.1f} | {size / 1024:.0f} |")


if __name__ == "__main__":
    main()
