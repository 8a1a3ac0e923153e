"""Mismatched collectives: rank 0 waits in barrier(), the other ranks in recv() from rank 0."""

import torch
import torch.distributed as dist
from _ddp import init, spawn


def worker(rank, world_size, port):
    init(rank, world_size, port)
    if rank == 0:
        dist.barrier()
    else:
        dist.recv(torch.zeros(1), src=0)


if __name__ == "__main__":
    spawn(worker)
