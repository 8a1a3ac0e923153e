"""Engine timings: deadline -> `spawnhang run` returning for a hung 4-rank gloo job, and the cost
of one py-spy dump (JSON, and with --native), side by side in one run.

    .venv/bin/python benchmarks/bench_engine.py [--repeat 3]

Prints a markdown table (median and max over the repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"
TIMEOUT_S = 15.0


def hung_job(repeat: int) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {
        "wall - deadline (incl. start-up)": [], "deadline -> report": [], "dump all": [],
        "reap": [], "processes dumped": []}
    env = dict(os.environ, PYTHONPATH=str(SCENARIOS))
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            subprocess.run([sys.executable, "-m", "pytest_spawnhang", "run", "--timeout",
                            str(TIMEOUT_S), "--report-dir", tmp, "--", sys.executable,
                            str(SCENARIOS / "gloo_mismatch.py"), "4"],
                           env=env, capture_output=True, check=False)
            wall = time.monotonic() - start
            report = json.loads((Path(tmp) / "report.json").read_text())
        assert report["verdict"] == "hang" and report["survivors"] == []
        dumped = [p for p in report["processes"] if p["threads"]]
        rows["wall - deadline (incl. start-up)"].append(wall - TIMEOUT_S)
        rows["deadline -> report"].append(report["timings"]["trigger_to_report_s"])
        rows["dump all"].append(report["timings"]["dump_s"])
        rows["reap"].append(report["timings"]["reap_s"])
        rows["processes dumped"].append(len(dumped))
    return rows


def one_dump(repeat: int) -> dict[str, list[float]]:
    from pytest_spawnhang.engine.dump import dump_one, find_pyspy

    target = subprocess.Popen([sys.executable, str(SCENARIOS / "sleep_user.py")])
    try:
        while not any("sleep_user" in part for part in psutil.Process(target.pid).cmdline()):
            time.sleep(0.01)
        rows: dict[str, list[float]] = {"one dump (json)": [], "one dump (--native)": []}
        for _ in range(repeat * 3):
            for native, key in ((False, "one dump (json)"), (True, "one dump (--native)")):
                start = time.perf_counter()
                dump = dump_one(target.pid, pyspy=find_pyspy(), native=native)
                rows[key].append(time.perf_counter() - start)
                assert dump.error is None, dump.error
        return rows
    finally:
        target.kill()
        target.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = {**hung_job(args.repeat), **one_dump(args.repeat)}
    print(f"4-rank gloo job hung (barrier vs recv), deadline {TIMEOUT_S:.0f}s, "
          f"{args.repeat} runs; {os.cpu_count()} cores\n")
    print("| measure | median | max |\n|---|---|---|")
    for name, values in rows.items():
        if name == "processes dumped":
            print(f"| {name} | {statistics.median(values):.0f} | {max(values):.0f} |")
        else:
            print(f"| {name} | {statistics.median(values) * 1000:.0f} ms "
                  f"| {max(values) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
