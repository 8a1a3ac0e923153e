"""A rank that never enters the collective: rank 0 waits in barrier(), rank 1 skips it and
returns, but a non-daemon thread it left running keeps it from exiting."""

import threading

import torch.distributed as dist
from _ddp import init, spawn


def worker(rank, world_size, port):
    init(rank, world_size, port)
    if rank == 0:
        dist.barrier()
    else:
        threading.Thread(target=threading.Event().wait, name="metrics-flusher").start()


if __name__ == "__main__":
    spawn(worker)
