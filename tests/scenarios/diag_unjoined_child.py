"""A child never joined: the spawn worker starts a non-daemon multiprocessing child that serves
until told to stop, and returns without stopping or joining it. multiprocessing joins it at
the worker's exit, so the worker never exits."""

import multiprocessing

import torch.multiprocessing as mp

CTX = multiprocessing.get_context("spawn")


def serve(requests):
    while requests.recv() != "stop":
        pass


def worker(rank):
    global REQUESTS  # the worker keeps its end open, as a server's client would
    child_end, REQUESTS = CTX.Pipe(duplex=False)
    CTX.Process(target=serve, args=(child_end,), name="server").start()


if __name__ == "__main__":
    mp.spawn(worker, nprocs=1)
