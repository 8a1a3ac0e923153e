"""The plugin's overhead: a 300-test trivial suite and a real multi-process suite we did not write
(joblib's own `test_parallel.py`, shipped in its wheel), each run with and without `--spawnhang`,
interleaved in one run so both sides meet the same machine.

    .venv/bin/pip install joblib==1.6.0      # once: the real suite
    .venv/bin/python benchmarks/bench_plugin.py [--repeat 5] [--real-repeat 2]

Prints a markdown table: median wall time of each side, the ratio, and each side's outcome line
(the real suite must give the same outcome with the flag off and on).

Both sides run with bytecode caching on, as an installed wheel has it: this machine sets
PYTHONDONTWRITEBYTECODE=1, which would charge the compilation of every module that has no cached
bytecode (this editable checkout's, so the plugin's) to every run. A warm-up run of each side
(trivial suite) writes the caches before anything is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIVIAL_TESTS = 300


def trivial_suite(directory: Path) -> list[str]:
    body = "\n".join(f"def test_{i}():\n    assert {i} + 1 > {i}\n" for i in range(TRIVIAL_TESTS))
    (directory / "test_trivial.py").write_text(body)
    return [str(directory / "test_trivial.py")]


def run(args: list[str], flag: bool, cwd: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    if flag:
        cmd += ["--spawnhang", f"--spawnhang-dir={cwd / 'reports'}"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    wall = time.perf_counter() - start
    outcome = next((ln for ln in reversed(done.stdout.splitlines())
                    if re.search(r"\d+ (passed|failed)", ln)), done.stdout[-200:])
    # The outcome without its timing and warning count (warnings vary from run to run).
    return wall, re.sub(r"(, \d+ warnings?)? in [\d.]+s.*", "", outcome.strip("= "))


def compare(name: str, args: list[str], repeat: int, cwd: Path) -> str:
    walls: dict[bool, list[float]] = {False: [], True: []}
    outcomes: dict[bool, set[str]] = {False: set(), True: set()}
    for _ in range(repeat):
        for flag in (False, True):
            wall, outcome = run(args, flag, cwd)
            walls[flag].append(wall)
            outcomes[flag].add(outcome)
    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    same = "same" if outcomes[False] == outcomes[True] else "DIFFERENT"
    return (f"| {name} | {repeat} | {off:.2f} s | {on:.2f} s | {on / off:.3f} | "
            f"{'; '.join(sorted(outcomes[False]))} | {same} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--real-repeat", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        trivial = trivial_suite(cwd)
        for flag in (False, True):  # warm-up: bytecode caches written, files in the page cache
            run(trivial, flag, cwd)
        rows.append(compare(f"{TRIVIAL_TESTS} trivial tests", trivial, args.repeat, cwd))
        if importlib.util.find_spec("joblib") is not None:
            import joblib

            rows.append(compare(f"joblib {joblib.__version__} test_parallel.py",
                                ["--pyargs", "joblib.test.test_parallel"], args.real_repeat, cwd))
        else:
            rows.append("| joblib test_parallel.py | - | - | - | - | not installed: "
                        "pip install joblib==1.6.0 | - |")
    print("| suite | runs | off (median) | --spawnhang (median) | ratio | outcome | on vs off |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
