"""The report's closed vocabularies: verdicts, triggers and roles, as string enums (a member is
its JSON value, so reports read and compare as plain strings). Re-exported by ``model``."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    EXIT = "exit"
    FAIL = "fail"
    HANG = "hang"
    INTERRUPTED = "interrupted"
    SNAPSHOT = "snapshot"


class Trigger(StrEnum):
    """Why the watch stopped: the program ended, the deadline passed, the tree stalled, the
    harness itself was cancelled (Ctrl-C, SIGTERM of a CI job), or a live tree was attached."""

    EXIT = "exit"
    DEADLINE = "deadline"
    STALL = "stall"
    CANCELLED = "cancelled"
    ATTACH = "attach"
    JOB = "job"  # another node of a job called a hang

    @property
    def verdict(self) -> Verdict:
        """The verdict of a run that stopped for this reason (``exit`` may still be a ``fail``:
        the exit status decides)."""
        return _TRIGGER_VERDICT[self]


_TRIGGER_VERDICT = {Trigger.EXIT: Verdict.EXIT, Trigger.DEADLINE: Verdict.HANG,
                    Trigger.STALL: Verdict.HANG, Trigger.CANCELLED: Verdict.INTERRUPTED,
                    Trigger.ATTACH: Verdict.SNAPSHOT,
                    Trigger.JOB: Verdict.HANG}


class Role(StrEnum):
    LAUNCHER = "launcher"
    RANK = "rank"
    FORKSERVER = "forkserver"
    RESOURCE_TRACKER = "resource_tracker"
    WANDB_INTERNAL = "wandb_internal"
    WANDB_SERVICE = "wandb_service"
    WANDB_CORE = "wandb_core"
    WORKER_CHILD = "worker_child"
    DATALOADER_WORKER = "dataloader_worker"  # torch.utils.data's worker processes
    MP_CHILD = "mp_child"
    OTHER = "other"


VERDICTS = tuple(Verdict)
TRIGGERS = tuple(Trigger)
ROLES = tuple(Role)

