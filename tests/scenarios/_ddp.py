"""Shared set-up for the scenario scripts: a gloo process group on a free loopback port."""

import os
import socket
import sys

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init(rank: int, world_size: int, port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


def spawn(worker, nprocs: int = 2) -> None:
    nprocs = int(sys.argv[1]) if len(sys.argv) > 1 else nprocs
    mp.spawn(worker, args=(nprocs, free_port()), nprocs=nprocs)
