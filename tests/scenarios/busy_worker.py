"""Two ranks busy on CPU for SECONDS of CPU time each, in one unchanging frame: progress, not a
stall."""

import sys
import time

import torch.multiprocessing as mp


def spin(cpu_seconds):
    while time.process_time() < cpu_seconds:
        pass


def worker(rank, cpu_seconds):
    spin(cpu_seconds)


if __name__ == "__main__":
    mp.spawn(worker, args=(float(sys.argv[1]),), nprocs=2)
