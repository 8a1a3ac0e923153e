"""Launch boilerplate shared by the repro scripts, so that each script keeps the user's shape.

A user's script ends with::

    os.environ["MASTER_ADDR"] = "localhost"
    os.environ["MASTER_PORT"] = "12355"
    mp.spawn(main, args=(world_size,), nprocs=world_size, join=True)

``launch(main)`` does exactly that, changing only what a given machine demands, from the command
line or the environment:

``--backend`` (``REPRO_BACKEND``, default ``gloo``)
    read by the worker through :func:`backend`; ``nccl`` needs one GPU per rank, and
    :func:`device` puts each rank's tensors on its GPU.
``--nprocs`` (``REPRO_NPROCS``, default 2)
    world size.
``--port`` (``MASTER_PORT``, default: a free port)
    a fixed port collides with other runs on a shared machine.
``--start-method`` (default ``spawn``)
    ``spawn`` goes through ``mp.spawn``, as the user wrote; ``forkserver`` and ``fork`` go through
    ``mp.start_processes(..., start_method=...)``, since ``mp.spawn`` accepts only ``spawn``.
``--wandb-mode`` (``WANDB_MODE``, default ``offline``)
    nothing talks to the network unless asked to.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set) ``launch`` calls
``main(rank, world_size)`` in the current process instead: torchrun has already started one
process per rank and set ``MASTER_ADDR``/``MASTER_PORT``.

Set ``WANDB_DIR`` to keep wandb's files out of the working directory; unset, a fresh temporary
directory is used.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.multiprocessing as mp

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

# The fixed scripts import pytest_spawnhang; from a checkout it need not be installed.
if importlib.util.find_spec("pytest_spawnhang") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def backend() -> str:
    """The process-group backend chosen by ``--backend``; workers inherit it via the environment."""
    return os.environ.get("REPRO_BACKEND", "gloo")


def device(rank: int) -> torch.device:
    """Where this rank's tensors live: nccl needs the rank's GPU, gloo takes CPU tensors."""
    if backend() != "nccl":
        return torch.device("cpu")
    # Under torchrun the global rank can exceed the GPU count; the local rank cannot.
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; every default comes from the environment, so torchrun can pass it."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    parser.add_argument("--backend", default=backend(), help="gloo (default) or nccl")
    parser.add_argument(
        "--nprocs", type=int, default=int(os.environ.get("REPRO_NPROCS", "2")), help="world size"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("MASTER_PORT", "0")),
        help="MASTER_PORT; 0 (default) picks a free one",
    )
    parser.add_argument("--start-method", choices=("spawn", "forkserver", "fork"), default="spawn")
    parser.add_argument(
        "--wandb-mode",
        choices=("offline", "disabled", "online"),
        default=os.environ.get("WANDB_MODE", "offline"),
    )
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(main: Callable[[int, int], None], argv: list[str] | None = None) -> None:
    """Run ``main(rank, world_size)`` once per rank, via mp.spawn or, under torchrun, directly."""
    args = parse_args(argv)
    # Workers read these back from the environment they inherit, as the user's script would.
    os.environ["REPRO_BACKEND"] = args.backend
    os.environ["WANDB_MODE"] = args.wandb_mode
    os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="repro-wandb-"))

    if all(name in os.environ for name in TORCHRUN_VARS):
        main(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
        return

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args.port or free_port())
    world_size = args.nprocs
    if args.start_method == "spawn":
        mp.spawn(main, args=(world_size,), nprocs=world_size, join=True)
    else:
        mp.start_processes(
            main,
            args=(world_size,),
            nprocs=world_size,
            join=True,
            start_method=args.start_method,
        )
