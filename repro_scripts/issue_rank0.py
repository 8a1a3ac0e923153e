"""The user's distributed script with wandb on rank 0 only.

With wandb 0.10.31 and mp.spawn it never exits: rank 0 waits, at exit, for wandb's internal
process (see docs/integration.md). fixed_rank0.py is the same script with the fix.

    python repro_scripts/issue_rank0.py [--nprocs 2] [--backend gloo] [--start-method spawn]
    torchrun --standalone --nproc-per-node 2 repro_scripts/issue_rank0.py
"""

import torch
import torch.distributed as dist
import wandb
from _common import backend, device, launch


def main(rank, world_size):
    dist.init_process_group(backend(), rank=rank, world_size=world_size)
    if rank == 0:
        wandb.init(project="ddp-hang")

    for step in range(3):
        total = torch.tensor([float(rank + step)], device=device(rank))
        dist.all_reduce(total)
        if rank == 0:
            wandb.log({"sum": total.item(), "step": step})

    dist.destroy_process_group()


if __name__ == "__main__":
    launch(main)
