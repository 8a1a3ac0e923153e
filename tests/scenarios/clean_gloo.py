"""A healthy job: every rank all-reduces once, destroys its group and returns."""

import torch
import torch.distributed as dist
from _ddp import init, spawn


def worker(rank, world_size, port):
    init(rank, world_size, port)
    t = torch.ones(1)
    dist.all_reduce(t)
    assert t.item() == world_size
    dist.destroy_process_group()


if __name__ == "__main__":
    spawn(worker)
