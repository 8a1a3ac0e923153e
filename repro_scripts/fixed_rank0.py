"""issue_rank0.py with the fix: the worker is wrapped in ``@clean_exit``.

``clean_exit`` finishes the wandb run on rank 0, destroys the process group and stops any
child process still running before the worker exits, so the script exits with wandb 0.10.31
too (see docs/integration.md). Nothing else differs from issue_rank0.py.

    python repro_scripts/fixed_rank0.py [--nprocs 2] [--backend gloo] [--start-method spawn]
    torchrun --standalone --nproc-per-node 2 repro_scripts/fixed_rank0.py
"""

import torch
import torch.distributed as dist
import wandb
from _common import backend, device, launch

from pytest_spawnhang.integration import clean_exit


@clean_exit
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
