"""Give each dumped process a role: launcher, rank N, resource tracker, wandb internal, ...

Roles that can be told from a command line or a stack are data (``ROLE_PATTERNS``); ranks come
from the ``RANK`` environment variable (torchrun, user code) or, for ``mp.spawn`` workers that
have none, from the order in which the launcher started them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import ProcessRecord


@dataclass(frozen=True)
class RolePattern:
    role: str
    cmdline: str | None = None  # regex over the joined command line
    frames: str | None = None  # regex over "function file" of any frame of any thread


ROLE_PATTERNS = (
    RolePattern("resource_tracker", cmdline=r"(multiprocessing|loky\.backend)\.resource_tracker"),
    RolePattern("wandb_core", cmdline=r"(^|/)wandb-core\b|(^|/)wandb-symon\b"),
    RolePattern("wandb_service", cmdline=r"wandb\b.*\bservice\b"),
    RolePattern("wandb_internal", frames=r"^wandb_internal |wandb/sdk/internal/internal\.py"),
    RolePattern("dataloader_worker", frames=r"_worker_loop .*torch/utils/data/_utils/worker\.py"),
)
# Roles whose processes are numbered by start order under their parent (torch starts
# DataLoader worker i i-th).
NUMBERED_ROLES = ("dataloader_worker",)
_FORKSERVER = re.compile(r"multiprocessing\.forkserver")
_MP_CHILD = re.compile(r"multiprocessing\.spawn|spawn_main|multiprocessing-fork")
_TORCH_DISTRIBUTED = re.compile(r"torch/multiprocessing/spawn\.py|torch/distributed/")


def assign_roles(
    records: list[ProcessRecord], launcher_pid: int, env_ranks: dict[int, int]
) -> None:
    """Set ``role``, ``rank`` and ``rank_source`` on every record, in place."""
    by_pid = {r.pid: r for r in records}
    for rec in records:
        rec.role, rec.rank, rec.rank_source, rec.worker_id = "other", None, None, None
        if rec.pid == launcher_pid:
            rec.role = "launcher"
        elif (role := _pattern_role(rec)) is not None:
            rec.role = role
        elif _is_forkserver(rec, by_pid):
            rec.role = "forkserver"
        # RANK is inherited: only the process where it changes is the rank, not its children.
        env_rank = env_ranks.get(rec.pid)
        if rec.role == "other" and env_rank is not None and env_ranks.get(rec.ppid) != env_rank:
            rec.role, rec.rank, rec.rank_source = "rank", env_rank, "env"

    if not any(r.rank_source == "env" for r in records):
        workers = [r for r in records if r.role == "other" and _started_by(r, launcher_pid, by_pid)]
        # Plain multiprocessing children are not ranks: only torch's spawn or a process group
        # makes the start order a rank.
        distributed = any(_runs(r, _TORCH_DISTRIBUTED) for r in [*workers, by_pid.get(
            launcher_pid)] if r is not None)
        for rank, rec in enumerate(sorted(workers, key=lambda r: (r.create_time, r.pid))):
            if distributed:
                rec.role, rec.rank, rec.rank_source = "rank", rank, "spawn-order"
            else:
                rec.role = "mp_child"

    for role in NUMBERED_ROLES:
        siblings: dict[int, list[ProcessRecord]] = {}
        for rec in records:
            if rec.role == role:
                siblings.setdefault(rec.ppid, []).append(rec)
        for group in siblings.values():
            for number, rec in enumerate(sorted(group, key=lambda r: (r.create_time, r.pid))):
                rec.worker_id = number

    ranks = {r.pid for r in records if r.role == "rank"}
    for rec in records:
        if rec.role == "other" and _has_ancestor(rec, ranks, by_pid):
            rec.role = "worker_child"


def _pattern_role(rec: ProcessRecord) -> str | None:
    cmdline = " ".join(rec.cmdline)
    frames = [f"{f.function} {f.file}" for t in rec.threads for f in t.frames]
    for pattern in ROLE_PATTERNS:
        if pattern.cmdline and re.search(pattern.cmdline, cmdline):
            return pattern.role
        if pattern.frames and any(re.search(pattern.frames, f) for f in frames):
            return pattern.role
    return None


def _runs(rec: ProcessRecord, pattern: re.Pattern[str]) -> bool:
    return any(pattern.search(f.file) for t in rec.threads for f in t.frames)


def _is_forkserver(rec: ProcessRecord, by_pid: dict[int, ProcessRecord]) -> bool:
    # The forkserver's own children are forked, so they carry its command line too.
    parent = by_pid.get(rec.ppid)
    joined = " ".join(rec.cmdline)
    return bool(_FORKSERVER.search(joined)) and not (
        parent is not None and _FORKSERVER.search(" ".join(parent.cmdline))
    )


def _started_by(
    rec: ProcessRecord, launcher_pid: int, by_pid: dict[int, ProcessRecord]
) -> bool:
    """A multiprocessing worker the launcher started: its direct child, or forked for it by
    its forkserver."""
    parent = by_pid.get(rec.ppid)
    if rec.ppid == launcher_pid:
        launcher = by_pid.get(launcher_pid)
        same_image = launcher is not None and launcher.cmdline == rec.cmdline  # fork method
        return same_image or bool(_MP_CHILD.search(" ".join(rec.cmdline)))
    return parent is not None and parent.role == "forkserver" and parent.ppid == launcher_pid


def _has_ancestor(rec: ProcessRecord, pids: set[int], by_pid: dict[int, ProcessRecord]) -> bool:
    hops, parent = 0, by_pid.get(rec.ppid)
    while parent is not None and hops < 64:
        if parent.pid in pids:
            return True
        hops, parent = hops + 1, by_pid.get(parent.ppid)
    return False
