"""Mismatched collectives under torchrun: rank 0 waits in barrier(), the others in recv()."""

import torch
import torch.distributed as dist

if __name__ == "__main__":
    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    if dist.get_rank() == 0:
        dist.barrier()
    else:
        dist.recv(torch.zeros(1), src=0)
