"""A two-node torchrun job: with "skip", global rank 3 (node 1's second rank) skips the
all_reduce and waits for a message nobody sends; with "clean", every rank joins it and exits."""

import sys

import torch
import torch.distributed as dist

if __name__ == "__main__":
    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    if sys.argv[1:] == ["skip"] and dist.get_rank() == 3:
        dist.recv(torch.zeros(1), src=0)
    else:
        dist.all_reduce(torch.ones(1))
    dist.destroy_process_group()
