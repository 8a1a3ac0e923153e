"""A process group never destroyed, with work still pending: each rank starts an async
collective the other never matches and returns without ``destroy_process_group()``. At exit the
interpreter destroys the group, whose destructor joins its worker threads, still waiting."""

import torch
import torch.distributed as dist
from _ddp import init, spawn


def worker(rank, world_size, port):
    init(rank, world_size, port)
    if rank == 0:
        dist.all_reduce(torch.ones(1), async_op=True)
    else:
        dist.broadcast(torch.ones(1), src=1, async_op=True)


if __name__ == "__main__":
    spawn(worker)
