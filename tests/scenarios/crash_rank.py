"""Rank 1 raises while rank 0 waits in a barrier: mp.spawn must fail fast, naming rank 1."""

import torch.distributed as dist
from _ddp import init, spawn


def worker(rank, world_size, port):
    init(rank, world_size, port)
    if rank == 1:
        raise ValueError("boom from rank 1")
    dist.barrier()


if __name__ == "__main__":
    spawn(worker)
