"""The user's DDP script with wandb on rank 0 only.

With wandb 0.10.31 and mp.spawn it never exits: rank 0 waits, at exit, for wandb's internal
process (see docs/integration.md). fixed_rank0.py is the same script with the fix.

    python repro_scripts/issue_rank0.py [--nprocs 2] [--backend gloo] [--start-method spawn]
    torchrun --standalone --nproc-per-node 2 repro_scripts/issue_rank0.py
"""

import torch
import torch.distributed as dist
import torch.nn as nn
import wandb
from _common import backend, launch
from torch.nn.parallel import DistributedDataParallel as DDP


def main(rank, world_size):
    dist.init_process_group(backend(), rank=rank, world_size=world_size)
    if rank == 0:
        wandb.init(project="ddp-hang")

    model = DDP(nn.Linear(10, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(3):
        optimizer.zero_grad()
        loss = model(torch.randn(8, 10)).pow(2).mean()
        loss.backward()
        optimizer.step()
        if rank == 0:
            wandb.log({"loss": loss.item(), "step": step})

    dist.destroy_process_group()


if __name__ == "__main__":
    launch(main)
