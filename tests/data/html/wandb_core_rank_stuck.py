"""Hang recorded in wandb_core_rank_stuck/report.json (wandb 0.31, .venv): rank 0 starts wandb
(whose wandb-core and wandb-symon are Go programs that py-spy cannot dump) and waits in
dist.barrier(); rank 1 never gets there, it waits on an Event that nobody sets."""

import os
import socket
import tempfile
import threading

import torch.distributed as dist
import torch.multiprocessing as mp
import wandb


def worker(rank: int, world_size: int) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    if rank == 0:
        wandb.init(project="ddp-hang", mode="offline")
        wandb.log({"loss": 0.5})
        dist.barrier()
    else:
        threading.Event().wait()


if __name__ == "__main__":
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="spawnhang-wandb-"))
    mp.spawn(worker, args=(2,), nprocs=2, join=True)
