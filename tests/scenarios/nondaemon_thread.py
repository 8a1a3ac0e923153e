"""A spawn worker returns but leaves a non-daemon thread waiting: the worker never exits."""

import threading

import torch.multiprocessing as mp


def wait_forever():
    threading.Event().wait()


def worker(rank):
    threading.Thread(target=wait_forever, name="stuck-helper").start()


if __name__ == "__main__":
    mp.spawn(worker, nprocs=2)
