"""Run a script as two torchrun nodes on loopback: N/2 ranks each, c10d rendezvous.

    python regression/two_nodes.py --nprocs 4 -- SCRIPT [ARGS...]

Exits 0 when both nodes exit 0, else with the first non-zero status. Both agents are children of
this process, so the engine tracks, dumps and reaps them as one tree.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_command(node: int, nprocs: int, port: int, script: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", str(nprocs // 2),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", str(port),
        # Both agents match 127.0.0.1 as their own host; say which one serves the store rather
        # than let the second one find out by failing to bind.
        "--rdzv-conf", f"is_host={int(node == 0)}",
        *script,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nprocs", type=int, required=True, help="world size, even, >= 2")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...]")
    args = parser.parse_args(argv)
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    if args.nprocs < 2 or args.nprocs % 2 or not script:
        parser.error("--nprocs must be even and >= 2, and a script must follow --")
    port = free_port()
    nodes = [subprocess.Popen(node_command(n, args.nprocs, port, script)) for n in (0, 1)]
    codes = [node.wait() for node in nodes]
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main())
