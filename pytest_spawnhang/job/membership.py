"""Which job a harness belongs to, as which node, and where the nodes meet.

Every value comes from the first source that has it: the CLI's options, then the launcher's own
arguments (``torchrun --nnodes 2 --node-rank 1 --master-addr A --master-port P``), then the
environment the job runs in (torchrun's, SLURM's). The tables below are that knowledge.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

# Environment variables, first found wins.
JOB_ID_ENV = ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")
NODE_RANK_ENV = ("GROUP_RANK", "NODE_RANK", "SLURM_NODEID")
NNODES_ENV = ("SLURM_NNODES", "SLURM_JOB_NUM_NODES")
# torchrun's flags (both spellings it accepts), value in the next argument or after "=".
TORCHRUN_FLAGS = {
    "nnodes": ("--nnodes",),
    "node_rank": ("--node-rank", "--node_rank"),
    "master_addr": ("--master-addr", "--master_addr"),
    "master_port": ("--master-port", "--master_port"),
    "rdzv_endpoint": ("--rdzv-endpoint", "--rdzv_endpoint"),
}
TORCHRUN_PROGRAMS = ("torchrun", "torch.distributed.run", "torch.distributed.launch")
# Our store, when the job has none, sits this far above the job's master port.
HOSTED_PORT_OFFSET = 1


class JobError(ValueError):
    """The job cannot be joined as asked (reported as one line by the CLI)."""


@dataclass
class Membership:
    job_id: str
    node_rank: int
    nnodes: int
    host: str
    # Where the nodes meet: a TCPStore at (addr, port), hosted by node 0's harness when
    # ``host_store`` (else a client of the launcher's own store), or a shared directory.
    store_addr: str | None = None
    store_port: int | None = None
    host_store: bool = False
    job_dir: Path | None = None

    @property
    def where(self) -> str:
        if self.job_dir is not None:
            return f"directory {self.job_dir}"
        owner = "node 0's harness" if self.host_store else "the launcher's rendezvous"
        return f"TCPStore {self.store_addr}:{self.store_port} ({owner})"


def launcher_args(command: list[str]) -> dict[str, str]:
    """torchrun's flags in ``command`` (empty when the command does not run torchrun)."""
    start = next((i for i, arg in enumerate(command)
                  if os.path.basename(arg) in TORCHRUN_PROGRAMS or arg in TORCHRUN_PROGRAMS), None)
    if start is None:
        return {}
    found: dict[str, str] = {}
    args = command[start + 1:]
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        for key, names in TORCHRUN_FLAGS.items():
            if flag in names:
                found[key] = value if eq else (args[i + 1] if i + 1 < len(args) else "")
    return found


def _int(value: str, what: str) -> int:
    if not value.strip().isdigit():
        raise JobError(f"{what} must be a whole number, not {value!r}")
    return int(value)


def _first_env(env: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def resolve(command: list[str], *, job: str | None, node_rank: int | None, nnodes: int | None,
            job_dir: Path | None = None, store: str | None = None,
            env: dict[str, str] | None = None) -> Membership | None:
    """The harness's membership, or None when it runs alone (no job, or a job of one node)."""
    env = dict(os.environ) if env is None else env
    launcher = launcher_args(command)
    job_id = job or _first_env(env, JOB_ID_ENV)
    if job_id is None:
        return None
    count = nnodes
    if count is None and (text := launcher.get("nnodes") or _first_env(env, NNODES_ENV)):
        if ":" in text:
            raise JobError(f"an elastic node count ({text}) is not supported: give --nnodes")
        count = _int(text, "the node count")
    if count is None:
        if job is None:
            return None  # a job from the environment alone, of unknown size: run alone
        raise JobError("--job needs the node count: --nnodes N (or torchrun's --nnodes)")
    if count < 2:
        return None
    rank = node_rank
    if rank is None and (text := launcher.get("node_rank") or _first_env(env, NODE_RANK_ENV)):
        rank = _int(text, "the node rank")
    if rank is None:
        raise JobError("a job needs this node's rank: --node-rank N (or torchrun's --node-rank)")
    if not 0 <= rank < count:
        raise JobError(f"node rank {rank} is outside the job's {count} nodes")
    member = Membership(job_id, rank, count, socket.gethostname(), job_dir=job_dir)
    if job_dir is None:
        member.store_addr, member.store_port, member.host_store = _endpoint(launcher, env, store)
    return member


def _endpoint(launcher: dict[str, str], env: dict[str, str],
              store: str | None) -> tuple[str, int, bool]:
    """(address, port, whether node 0's harness hosts the store)."""
    if store is not None:
        addr, _, port = store.rpartition(":")
        return addr or "127.0.0.1", _int(port, "the store's port"), True
    if endpoint := launcher.get("rdzv_endpoint"):
        addr, _, port = endpoint.rpartition(":")
        return addr, _int(port or "29400", "the rendezvous port"), False
    addr = launcher.get("master_addr") or env.get("MASTER_ADDR")
    port = launcher.get("master_port") or env.get("MASTER_PORT")
    if launcher and addr and port:
        # torchrun's node 0 agent hosts its static rendezvous store there: we join as a client.
        return addr, _int(port, "the master port"), False
    if addr and port:
        return addr, _int(port, "the master port") + HOSTED_PORT_OFFSET, True
    raise JobError("the nodes have nowhere to meet: give --job-store HOST:PORT, --job-dir DIR, "
                   "or run torchrun with --master-addr/--master-port")
