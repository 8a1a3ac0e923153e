"""The issue's hang, grouped (wandb 0.10.x): every rank starts its own run in group "DDP" and
returns without ``wandb.finish()``; each rank joins its own wandb internal process at exit."""

import torch.distributed as dist
import wandb
from _ddp import init, spawn


def worker(rank, world_size, port):
    init(rank, world_size, port)
    wandb.init(project="x", group="DDP", mode="offline")
    wandb.log({"loss": 0.5, "rank": rank})
    dist.destroy_process_group()


if __name__ == "__main__":
    spawn(worker)
