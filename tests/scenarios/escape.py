"""A worker whose helpers escape its tree: one in a new session, one by double fork, both
ignoring SIGTERM. Only a subreaper keeps them in view."""

import os
import signal
import subprocess
import sys
import threading

import torch.multiprocessing as mp

IGNORE_TERM_AND_WAIT = (
    "import signal, threading; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "threading.Event().wait()"
)


def double_fork():
    if os.fork() == 0:
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", IGNORE_TERM_AND_WAIT])
        os._exit(0)


def worker(rank):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", IGNORE_TERM_AND_WAIT], start_new_session=True)
    double_fork()
    threading.Event().wait()


if __name__ == "__main__":
    mp.spawn(worker, nprocs=1)
