"""Hang detection with nothing configured: per hang case, the time to the verdict beside the time
with a deadline alone (detection off), side by side in one run; and what watching costs, as a
share of one core, for an idle 6-process tree and a 74-process tree.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_detection.py [--deadline 30] [--seconds 20] \
        [--legacy-python .venv-legacy/bin/python]

The deadline runs wait the whole deadline by design, so both runs of a case go at once (idle
waits). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"
CASES = [("queue-join deadlock", ["queue_deadlock.py"]),
         ("gloo barrier/recv mismatch, 2 ranks", ["gloo_mismatch.py", "2"]),
         ("worker left with a non-daemon thread", ["nondaemon_thread.py"]),
         ("DataLoader worker stuck in __getitem__", ["dataloader_stuck.py"]),
         ("lock-order deadlock between two threads", ["lock_order.py"])]
# The hang needs wandb 0.10.x: run by --legacy-python (.venv-legacy/bin/python).
LEGACY_CASE = ("wandb 0.10.31 rank 0 joined at exit (the issue)", ["diag_wandb_rank0.py", "2"])
# A healthy idle tree: a parent and its children, each in a long one-shot sleep (never called,
# so the detector keeps reading it at its steady rate).
IDLE_TREE = ("import subprocess, sys, time\n"
             "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])"
             " for _ in range(int(sys.argv[1]))]\n"
             "time.sleep(600)\n")


def verdict(options: list[str], script: list[str], python: str = sys.executable
            ) -> tuple[float, str]:
    """Seconds to the report's verdict, and the rule that fired."""
    directory = tempfile.mkdtemp()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(SCENARIOS)]),
               WANDB_MODE="offline")
    subprocess.run([sys.executable, "-m", "pytest_spawnhang", "run", "--report-dir", directory,
                    *options, "--", python, str(SCENARIOS / script[0]), *script[1:]],
                   env=env, capture_output=True, timeout=600)
    report = json.loads((Path(directory) / "report.json").read_text())
    return report["duration_s"], report["evidence"].get("rule", report["trigger"])


def watch_cost(children: int, seconds: float) -> dict[str, float]:
    """CPU of the watching process per second of wall time over an idle tree: the process-set
    poll alone, and the poll plus hang detection (its default window)."""
    from pytest_spawnhang.engine import ProcessTracker, StallDetector
    from pytest_spawnhang.values import DEFAULT_STALL_S

    tree = subprocess.Popen([sys.executable, "-c", IDLE_TREE, str(children)])
    try:
        while len(psutil.Process(tree.pid).children(recursive=True)) < children:
            time.sleep(0.1)
        costs = {}
        for name, detector in (("poll only", None),
                               ("poll + detection", StallDetector(DEFAULT_STALL_S))):
            tracker = ProcessTracker(root_pid=tree.pid)
            tracker.track(psutil.Process(tree.pid))
            fired = False
            cpu0, end = time.process_time(), time.monotonic() + seconds
            while (now := time.monotonic()) < end:
                changes = tracker.poll()
                if detector is not None:
                    fired = detector.observe(tracker, changes, now) or fired
                time.sleep(0.1)
            costs[name] = (time.process_time() - cpu0) / seconds
            costs[f"{name} fired"] = fired
        return costs
    finally:
        for child in psutil.Process(tree.pid).children(recursive=True):
            child.kill()
        tree.kill()
        tree.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="per cost measurement")
    parser.add_argument("--legacy-python", help="an interpreter with wandb 0.10.x, for the "
                        "issue's own hang")
    args = parser.parse_args()
    cases = [(name, script, sys.executable) for name, script in CASES]
    if args.legacy_python:
        cases.append((*LEGACY_CASE, args.legacy_python))
    print(f"time to verdict: nothing configured, beside detection off with a {args.deadline:.0f}s"
          " deadline\n")
    print("| case | nothing configured | rule | deadline only | ratio |\n|---|---|---|---|---|")
    for name, script, python in cases:
        with ThreadPoolExecutor(2) as pool:
            detected = pool.submit(verdict, [], script, python)
            deadline = pool.submit(verdict, ["--stall", "off", "--timeout",
                                             str(args.deadline)], script, python)
            (fast, rule), (slow, _) = detected.result(), deadline.result()
        print(f"| {name} | {fast:.1f}s | {rule} | {slow:.1f}s | {slow / fast:.0f}x |")
    print("\nwatching cost, share of one core (the watching process, over an idle tree)\n")
    print("| tree | poll only | poll + detection | called a hang |\n|---|---|---|---|")
    for children in (5, 73):
        cost = watch_cost(children, args.seconds)
        print(f"| {children + 1} processes | {cost['poll only']:.1%} | "
              f"{cost['poll + detection']:.1%} | {cost['poll + detection fired']} |")


if __name__ == "__main__":
    main()
