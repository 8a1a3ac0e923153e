"""Seconds per bisection step: building a version's environment against running it, with a
cold cache and a warm one, side by side in one run.

    python benchmarks/bench_bisect.py                     # tinypkg 1.0-1.7 from a local index
    python benchmarks/bench_bisect.py --json A/bisect.json B/bisect.json   # tabulate real runs

The local index is the tests' (tests/wheels.py): 8 versions, hanging from 1.4 on; a hang is
called by a 3 s deadline, so "run" is mostly that deadline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from wheels import tiny_index  # noqa: E402


def bisect(index: Path, cache: Path, reports: Path) -> tuple[dict, float]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest_spawnhang", "bisect", "tinypkg", "--good",
                    "1.0", "--bad", "1.7", "--no-index", "--find-links", str(index),
                    "--cache-dir", str(cache), "--report-dir", str(reports), "--timeout", "3",
                    "--", "python", "-c", "import tinypkg"],
                   check=True, capture_output=True)
    wall = time.monotonic() - started
    return json.loads((reports / "bisect.json").read_text()), wall


def row(name: str, data: dict, wall: float | None) -> str:
    steps = data["steps"]
    env = [s["env_s"] for s in steps]
    run = [s["duration_s"] for s in steps]
    cached = sum(s["env_cached"] for s in steps)
    total = wall if wall is not None else data["duration_s"]
    return (f"| {name} | {len(steps)} ({cached} cached) | {statistics.median(env):.1f} | "
            f"{max(env):.1f} | {statistics.median(run):.1f} | {max(run):.1f} | {sum(env):.1f} | "
            f"{sum(run):.1f} | {total:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", nargs="+", type=Path, help="bisect.json files to tabulate")
    args = parser.parse_args()
    print("| bisection | steps | env s/step, median | env, max | run s/step, median | run, max "
          "| env s, all | run s, all | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    if args.json:
        for path in args.json:
            data = json.loads(path.read_text())
            print(row(f"{data['package']} {data['bad']}..{data['good']} ({path.parent.name})",
                      data, None))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        index, cache = tiny_index(base / "index"), base / "cache"
        for name in ("cold cache", "warm cache"):
            data, wall = bisect(index, cache, base / name.replace(" ", "-"))
            print(row(f"tinypkg, {name}", data, wall))


if __name__ == "__main__":
    main()
