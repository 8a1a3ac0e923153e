"""Hang recorded in legacy_wandb_rank0/report.json (run with wandb 0.10.31, .venv-legacy): rank 0
starts wandb and returns without wandb.finish(); at exit it joins wandb's internal process, which
never ends, so rank 0 never exits and the launcher waits for it forever."""

import os
import socket
import tempfile

import torch.distributed as dist
import torch.multiprocessing as mp
import wandb


def worker(rank: int, world_size: int) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    if rank == 0:
        wandb.init(project="ddp-hang", mode="offline")
        wandb.log({"loss": 0.5})
    dist.destroy_process_group()


if __name__ == "__main__":
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="spawnhang-wandb-"))
    mp.spawn(worker, args=(2,), nprocs=2, join=True)
