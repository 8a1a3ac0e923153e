"""The issue's hang (wandb 0.10.x): rank 0 starts a wandb run and returns without
``wandb.finish()``; at exit it joins wandb's internal process, which waits for the shutdown
message that wandb's atexit hook would send after the join. With wandb >= 0.13 it exits."""

import torch.distributed as dist
import wandb
from _ddp import init, spawn


def worker(rank, world_size, port):
    init(rank, world_size, port)
    if rank == 0:
        wandb.init(project="x", mode="offline")
        wandb.log({"loss": 0.5})
    dist.destroy_process_group()


if __name__ == "__main__":
    spawn(worker)
