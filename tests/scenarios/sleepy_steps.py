"""Training-like steps: each waits (sleep, shorter than a stall window) then computes."""

import sys
import time

import torch.multiprocessing as mp


def step(pause):
    time.sleep(pause)
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass


def worker(rank, steps, pause):
    for _ in range(steps):
        step(pause)


if __name__ == "__main__":
    mp.spawn(worker, args=(int(sys.argv[1]), float(sys.argv[2])), nprocs=2)
