"""Stall detection: time to verdict for hang cases under a long deadline, against the deadline
alone and against pytest-timeout with the same deadline, side by side in one run; and the CPU
that watching costs.

    .venv/bin/python benchmarks/bench_stall.py [--deadline 300] [--stall 5] [--legacy-python P]

The deadline-only and pytest-timeout runs wait the whole deadline by design, so all runs of
one case go at once (they are idle waits). `--legacy-python .venv-legacy/bin/python` adds the
issue's wandb 0.10.31 rank-0 case. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"


def leftovers(token: str) -> int:
    count = 0
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SPAWNHANG_TEST_TOKEN") == token:
                count += 1
                proc.kill()
        except psutil.Error:
            continue
    return count


def timed(cmd: list[str], python: str, guard_s: float) -> tuple[float, int, int]:
    """Seconds to the end, exit status, processes it left alive (then killed)."""
    token = uuid.uuid4().hex
    env = dict(os.environ, SPAWNHANG_TEST_TOKEN=token, PYTHONPATH=str(SCENARIOS),
               WANDB_MODE="offline", WANDB_DIR=tempfile.mkdtemp())
    start = time.monotonic()
    try:
        status = subprocess.run(cmd, env=env, capture_output=True, timeout=guard_s).returncode
    except subprocess.TimeoutExpired:
        status = -1  # pytest itself never exited
    return time.monotonic() - start, status, leftovers(token)


def one_case(script: Path, python: str, deadline: float, stall: float
             ) -> tuple[dict[str, tuple], float | None]:
    """The three runs of a case, and how long the tree had been quiet when the stall rule fired
    (its report's evidence): the time from the last sign of progress, such as the last rank
    finishing its work, to the verdict."""
    stall_dir = Path(tempfile.mkdtemp())
    spawnhang = [python, "-m", "pytest_spawnhang", "run", "--report-dir"]
    test = Path(tempfile.mkdtemp()) / "test_case.py"
    test.write_text(textwrap.dedent(f"""
        import subprocess
        import pytest

        @pytest.mark.timeout({deadline})
        def test_case():
            subprocess.run([{python!r}, {str(script)!r}], check=True)
    """))
    runs = {
        "spawnhang --stall": [*spawnhang, str(stall_dir), "--timeout", str(deadline),
                              "--stall", str(stall), "--", python, str(script)],
        "spawnhang deadline only": [*spawnhang, tempfile.mkdtemp(), "--timeout", str(deadline),
                                    "--", python, str(script)],
        "pytest-timeout": [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
    }
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {k: pool.submit(timed, cmd, python, deadline + 120) for k, cmd in runs.items()}
        results = {k: f.result() for k, f in futures.items()}
    report = json.loads((stall_dir / "report.json").read_text())
    return results, report["evidence"].get("quiet_for_s")


def watch_cost(seconds: float, stall: float) -> dict[str, float]:
    """CPU of the watching process (and its py-spy children) per second, over an idle 6-process
    tree: polling alone, and polling plus stall sampling."""
    from pytest_spawnhang.engine.stall import StallDetector
    from pytest_spawnhang.engine.tree import ProcessTracker

    tree = subprocess.Popen([sys.executable, str(SCENARIOS / "gloo_mismatch.py"), "4"],
                            env=dict(os.environ, PYTHONPATH=str(SCENARIOS)))
    try:
        while len(psutil.Process(tree.pid).children(recursive=True)) < 5:
            time.sleep(0.1)
        costs = {}
        for name, detector in (("poll only", None), ("poll + stall", StallDetector(1e9))):
            tracker = ProcessTracker(root_pid=tree.pid)
            cpu0 = _cpu_self_and_children()
            end = time.monotonic() + seconds
            while (now := time.monotonic()) < end:
                changes = tracker.poll()
                if detector is not None:
                    detector.observe(tracker, changes, now)
                time.sleep(0.1)
            costs[name] = (_cpu_self_and_children() - cpu0) / seconds
        costs["stall window used"] = stall
        return costs
    finally:
        for child in psutil.Process(tree.pid).children(recursive=True):
            child.kill()
        tree.kill()
        tree.wait()


def _cpu_self_and_children() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--stall", type=float, default=5.0)
    parser.add_argument("--legacy-python", help="a Python with wandb 0.10.31 for the issue case")
    args = parser.parse_args()
    cases = [(SCENARIOS / "queue_deadlock.py", sys.executable),
             (SCENARIOS / "nondaemon_thread.py", sys.executable)]
    if args.legacy_python:
        cases.append((ROOT / "repro_scripts" / "issue_rank0.py", args.legacy_python))
    print(f"time to verdict, deadline {args.deadline:.0f}s, stall window {args.stall:.0f}s; "
          f"'left' = processes still alive afterwards\n")
    print("| case | spawnhang --stall | quiet before the stall verdict | deadline only | "
          "pytest-timeout |\n|---|---|---|---|---|")
    for script, python in cases:
        row, quiet = one_case(script, python, args.deadline, args.stall)
        cells = [f"{t:.1f}s (rc {rc}, left {left})" for t, rc, left in row.values()]
        cells.insert(1, "-" if quiet is None else f"{quiet:.1f}s")
        print(f"| {script.name} | " + " | ".join(cells) + " |", flush=True)
    cost = watch_cost(20.0, args.stall)
    print("\n| watching an idle 6-process tree | CPU (share of one core) |\n|---|---|")
    for name in ("poll only", "poll + stall"):
        print(f"| {name} | {cost[name] * 100:.2f} % |")


if __name__ == "__main__":
    main()
