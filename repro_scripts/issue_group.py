"""The user's distributed script with one wandb run per rank, grouped.

With wandb 0.10.31 and mp.spawn it never exits: every rank waits, at exit, for its own wandb
internal process (see docs/integration.md). fixed_group.py is the same script with the fix.

    python repro_scripts/issue_group.py [--nprocs 2] [--backend gloo] [--start-method spawn]
    torchrun --standalone --nproc-per-node 2 repro_scripts/issue_group.py
"""

import torch
import torch.distributed as dist
import wandb
from _common import backend, device, launch


def main(rank, world_size):
    dist.init_process_group(backend(), rank=rank, world_size=world_size)
    wandb.init(project="ddp-hang", group="DDP")

    for step in range(3):
        total = torch.tensor([float(rank + step)], device=device(rank))
        dist.all_reduce(total)
        wandb.log({"sum": total.item(), "step": step})

    dist.destroy_process_group()


if __name__ == "__main__":
    launch(main)
