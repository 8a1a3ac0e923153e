"""Newest wandb, offline: the run's wandb-core helper is stopped (SIGSTOP) and the process then
calls run.log() and run.finish(), which wait on wandb-core's socket for ever."""

import os
import signal

import psutil
import wandb

if __name__ == "__main__":
    run = wandb.init(project="spawnhang-test", mode="offline")
    run.log({"step": 0})
    cores = [p for p in psutil.Process().children(recursive=True)
             if "wandb-core" in " ".join(p.cmdline())]
    for core in cores:
        os.kill(core.pid, signal.SIGSTOP)
    print("stopped", [c.pid for c in cores], flush=True)
    for step in range(1, 1000):
        run.log({"step": step})
    run.finish()
