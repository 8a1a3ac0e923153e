"""No bug: a spawn worker asks a TCP server at HOST:PORT, which this program did not start, and
waits for its answer however long it takes."""

import socket
import sys

import torch.multiprocessing as mp


def worker(rank, host, port):
    with socket.create_connection((host, port)) as conn:
        conn.sendall(b"ask\n")
        assert conn.recv(64)


if __name__ == "__main__":
    host, port = sys.argv[1].rsplit(":", 1)
    mp.spawn(worker, args=(host, int(port)), nprocs=1)
