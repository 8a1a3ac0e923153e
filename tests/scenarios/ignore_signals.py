"""Workers that ignore SIGTERM and SIGINT (torch's parent-death signal): they outlive a killed
launcher and `timeout`."""

import signal
import threading

import torch.multiprocessing as mp


def worker(rank):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Event().wait()


if __name__ == "__main__":
    mp.spawn(worker, nprocs=2)
