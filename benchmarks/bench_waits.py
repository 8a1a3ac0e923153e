"""Cost of reading the kernel wait model of a 74-process tree, beside py-spy dumping it.

The tree: a launcher waiting for its children, a native `sleep` child, and 8 ranks that each fork
8 workers blocked reading a pipe the rank holds. Ranks wait either on an event (futex) or in recv
on a TCP connection to the launcher (as on a TCPStore), which also loads the socket tables.

    .venv/bin/python benchmarks/bench_waits.py [--rounds 11] [--spy-rounds 3]

Prints a Markdown table (medians over the rounds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

import psutil

from pytest_spawnhang.engine.kernel import read_waits

TREE = """
import os, socket, sys, threading
ranks, workers, tcp = 8, 8, sys.argv[1] == "tcp"
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
os.posix_spawn("/bin/sleep", ["sleep", "1000"], os.environ)
for _ in range(ranks):
    if os.fork() == 0:
        read_end, write_end = os.pipe()
        for _ in range(workers):
            if os.fork() == 0:
                os.close(write_end)
                os.read(read_end, 1)
                os._exit(0)
        if tcp:
            socket.create_connection(("127.0.0.1", port)).recv(1)
        threading.Event().wait()
        os._exit(0)
held = [server.accept()[0] for _ in range(ranks)] if tcp else []
os.wait()
"""
EXPECTED = 1 + 1 + 8 + 8 * 8


def start_tree(mode: str) -> tuple[subprocess.Popen, list[int]]:
    launcher = subprocess.Popen([sys.executable, "-c", TREE, mode], start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = [launcher.pid] + [p.pid for p in psutil.Process(launcher.pid).children(True)]
        if len(pids) == EXPECTED and all_blocked(pids, mode):
            return launcher, pids
        time.sleep(0.05)
    stop(launcher)
    raise SystemExit(f"the {mode} tree never settled")


def all_blocked(pids: list[int], mode: str) -> bool:
    found = read_waits(pids)
    calls = {t.syscall for r in found.values() for t in r.threads}
    wanted = {"wait4", "clock_nanosleep", "read", "recvfrom" if mode == "tcp" else "futex"}
    return calls == wanted and not any(r.error for r in found.values())


def stop(launcher: subprocess.Popen) -> None:
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()


def median_s(action, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def py_spy_all(pids: list[int]) -> None:
    for pid in pids:  # one JSON dump per pid: `--subprocesses --json` returns only the root
        subprocess.run([PY_SPY, "dump", "--json", "--pid", str(pid)], capture_output=True,
                       timeout=30, check=False)


PY_SPY = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")


def measure(mode: str, rounds: int, spy_rounds: int) -> tuple[str, int, float, float, float]:
    launcher, pids = start_tree(mode)
    try:
        first = read_waits(pids)
        waits = median_s(lambda: read_waits(pids), rounds)
        polling = median_s(lambda: read_waits(pids, previous=first), rounds)
        spy = median_s(lambda: py_spy_all(pids), spy_rounds)
    finally:
        stop(launcher)
    return mode, len(pids), waits, polling, spy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--spy-rounds", type=int, default=3)
    args = parser.parse_args()
    rows = [measure(mode, args.rounds, args.spy_rounds) for mode in ("futex", "tcp")]
    print("| ranks wait on | processes | read_waits (ms) | read_waits, 2nd sample (ms) "
          "| py-spy dump each pid, serial (ms) | py-spy / read_waits |")
    print("|---|---|---|---|---|---|")
    for mode, count, waits, polling, spy in rows:
        print(f"| {mode} | {count} | {waits * 1e3:.1f} | {polling * 1e3:.1f} | {spy * 1e3:.0f} "
              f"| {spy / waits:.0f}x |")


if __name__ == "__main__":
    main()
