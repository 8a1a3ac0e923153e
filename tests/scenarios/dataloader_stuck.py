"""A DataLoader with two workers; the item at index 3 takes a lock the worker already holds
(a plain Lock is not re-entrant), so that worker never returns from __getitem__ and the main
process waits for its batch forever. Prints "worker stuck" from the worker once it is about to
block, so that a test can wait for that line."""

import sys
import threading

import torch
from torch.utils.data import DataLoader, Dataset


class Stuck(Dataset):
    def __init__(self):
        self.lock = threading.Lock()

    def __len__(self):
        return 8

    def __getitem__(self, index):
        if index == 3:
            self.lock.acquire()
            print("worker stuck", flush=True)
            self.lock.acquire()  # held already: blocks for ever
        return torch.tensor([index])


if __name__ == "__main__":
    for batch in DataLoader(Stuck(), batch_size=1, num_workers=2):
        print("batch", int(batch), flush=True, file=sys.stderr)
