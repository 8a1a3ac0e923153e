"""The user's distributed script without wandb: the control case, which exits.

    python repro_scripts/issue_no_wandb.py [--nprocs 2] [--backend gloo] [--start-method spawn]
    torchrun --standalone --nproc-per-node 2 repro_scripts/issue_no_wandb.py
"""

import torch
import torch.distributed as dist
from _common import backend, device, launch


def main(rank, world_size):
    dist.init_process_group(backend(), rank=rank, world_size=world_size)

    for step in range(3):
        total = torch.tensor([float(rank + step)], device=device(rank))
        dist.all_reduce(total)
        if rank == 0:
            print(f"step {step} sum {total.item()}")

    dist.destroy_process_group()


if __name__ == "__main__":
    launch(main)
