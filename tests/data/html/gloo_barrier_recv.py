"""Hang recorded in gloo_barrier_recv/report.json: rank 0 waits in dist.barrier() while rank 1
waits in dist.recv() from rank 0, so neither call can complete."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, world_size: int) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    if rank == 0:
        dist.barrier()
    else:
        dist.recv(torch.zeros(1), src=0)


if __name__ == "__main__":
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    mp.spawn(worker, args=(2,), nprocs=2, join=True)
