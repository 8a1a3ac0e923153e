"""A job on several nodes: time from the first node's trigger to the merged report on every node,
for 2 and 4 nodes, on loopback (every node a torchrun agent with its own ``spawnhang run --job``).

    .venv/bin/python benchmarks/bench_job.py [--repeat 3]

Node 0 calls a stall (window 3 s) on the job of tests/scenarios/job_ranks.py (global rank 3
skips the all_reduce); the others are fired by the job. Per node: "merged" is when the merged
report was ready (before the reap), "written" when its report.json was on disk (after the reap,
whose SIGTERM grace is 1 s). All times come from one host's clock. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_spawnhang.model import Report  # noqa: E402

SCRIPT = ROOT / "tests" / "scenarios" / "job_ranks.py"
PROCS_PER_NODE = {2: 2, 4: 1}  # four ranks either way, on a small machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_job(nnodes: int, tmp: Path) -> dict[str, list[float]]:
    port, job = free_port(), uuid.uuid4().hex[:8]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = []
    for node in range(nnodes):
        options = ("--stall", "3") if node == 0 else ()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pytest_spawnhang", "run", "--job", job, "--timeout", "150",
             *options, "--report-dir", str(tmp / f"n{node}"), "--", sys.executable, "-m",
             "torch.distributed.run", "--nnodes", str(nnodes), "--node-rank", str(node),
             "--nproc-per-node", str(PROCS_PER_NODE[nnodes]), "--master-addr", "127.0.0.1",
             "--master-port", str(port), str(SCRIPT), "skip"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    for proc in procs:
        proc.wait(timeout=180)
    merged = [Report.load(tmp / f"n{node}" / "report.json") for node in range(nnodes)]
    first_at = merged[0].job.first_at
    assert first_at is not None and all(m.job.root_cause_ranks == [3] for m in merged)
    rows: dict[str, list[float]] = {"merged": [], "written": []}
    for node in range(nnodes):
        own = Report.load(tmp / f"n{node}" / f"node{node}" / "report.json")
        rows["merged"].append(own.timings["job_trigger_to_merged_s"])
        rows["written"].append((tmp / f"n{node}" / "report.json").stat().st_mtime - first_at)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| nodes | trigger -> merged report, median (every node) | worst node, worst run "
          "| trigger -> report.json written, worst node (median run) |")
    print("|---|---|---|---|")
    for nnodes in (2, 4):
        merged, worst, written = [], [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                rows = one_job(nnodes, Path(tmp))
            merged += rows["merged"]
            worst.append(max(rows["merged"]))
            written.append(max(rows["written"]))
        print(f"| {nnodes} | {statistics.median(merged) * 1000:.0f} ms | "
              f"{max(worst) * 1000:.0f} ms | {statistics.median(written) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
