"""No bug: two spawn workers each sleep SECONDS once, then finish (a one-shot timer)."""

import sys
import time

import torch.multiprocessing as mp


def worker(rank, seconds):
    time.sleep(seconds)


if __name__ == "__main__":
    mp.spawn(worker, args=(float(sys.argv[1]),), nprocs=2)
