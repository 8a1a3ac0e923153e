"""Make a multi-process PyTorch worker exit, whatever it leaves behind.

A worker started by ``torch.multiprocessing.spawn`` does not exit when its function returns: the
child's bootstrap first runs ``multiprocessing.util._exit_function``, which joins every
non-daemon ``multiprocessing`` child of the worker, without a time limit, and only then lets the
interpreter run its ``atexit`` hooks. A library that starts such a child and stops it from an
``atexit`` hook therefore deadlocks the worker, and ``mp.spawn(..., join=True)`` waits forever.
wandb 0.10.31 is one: ``wandb.init`` starts its internal process as a non-daemon
``multiprocessing`` child and asks it to stop from ``atexit``. See ``docs/integration.md``.

:func:`clean_exit` wraps the worker and, however the worker ends, before the bootstrap's join:

1. finishes the active wandb run, if any (``wandb.finish``);
2. destroys the default ``torch.distributed`` process group, if one is initialised;
3. joins the non-daemon ``multiprocessing`` children still running, up to ``join_timeout``
   seconds, then terminates (SIGTERM) and finally kills (SIGKILL) those that remain;
4. logs the non-daemon threads still running: the bootstrap joins those too
   (``threading._shutdown``), and no one can stop a thread from outside.

Each step runs even if an earlier one fails, and what had to be done is logged through
:mod:`logging` (logger ``pytest_spawnhang.integration``). An exception raised by the worker
propagates unchanged, so ``mp.spawn`` still raises ``ProcessRaisedException`` for it.

Use it as a decorator or as a context manager::

    @clean_exit
    def main(rank, world_size): ...

    @clean_exit(join_timeout=10.0)
    def main(rank, world_size): ...

    def main(rank, world_size):
        with clean_exit():
            ...

This module imports neither torch nor wandb: it only uses them when the worker already has.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, TypeVar, overload

__all__ = ["CleanExit", "clean_exit"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_JOIN_TIMEOUT = 10.0
DEFAULT_TERMINATE_TIMEOUT = 5.0


class CleanExit(contextlib.ContextDecorator):
    """Context manager and decorator that leaves a worker nothing to wait for at exit.

    Holds no state between uses, so one instance may wrap many calls, also concurrently.

    Args:
        join_timeout: seconds to wait, all children together, for non-daemon ``multiprocessing``
            children to end by themselves before terminating them.
        terminate_timeout: seconds to wait after SIGTERM before SIGKILL, and after SIGKILL.
    """

    def __init__(
        self,
        join_timeout: float = DEFAULT_JOIN_TIMEOUT,
        terminate_timeout: float = DEFAULT_TERMINATE_TIMEOUT,
    ) -> None:
        if join_timeout < 0 or terminate_timeout < 0:
            raise ValueError("timeouts must not be negative")
        self.join_timeout = join_timeout
        self.terminate_timeout = terminate_timeout

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(join_timeout={self.join_timeout}, "
            f"terminate_timeout={self.terminate_timeout})"
        )

    def __enter__(self) -> CleanExit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Returning None lets the worker's exception propagate.
        _cleanup(
            failed=exc_type is not None,
            join_timeout=self.join_timeout,
            terminate_timeout=self.terminate_timeout,
        )


@overload
def clean_exit(func: F, /) -> F: ...


@overload
def clean_exit(
    *,
    join_timeout: float = DEFAULT_JOIN_TIMEOUT,
    terminate_timeout: float = DEFAULT_TERMINATE_TIMEOUT,
) -> CleanExit: ...


def clean_exit(
    func: F | None = None,
    /,
    *,
    join_timeout: float = DEFAULT_JOIN_TIMEOUT,
    terminate_timeout: float = DEFAULT_TERMINATE_TIMEOUT,
) -> F | CleanExit:
    """Wrap a spawn worker so that it always exits; see the module docstring.

    ``@clean_exit`` decorates ``func`` directly; ``clean_exit(join_timeout=...)`` returns a
    :class:`CleanExit`, usable as ``@clean_exit(...)`` or ``with clean_exit(...):``. The decorated
    function keeps its name and module, so ``mp.spawn`` can still pickle it by reference.
    """
    guard = CleanExit(join_timeout=join_timeout, terminate_timeout=terminate_timeout)
    if func is None:
        return guard
    return guard(func)


def _cleanup(*, failed: bool, join_timeout: float, terminate_timeout: float) -> None:
    """Run the clean-up steps now; each is attempted even if an earlier one raised.

    Args:
        failed: the worker is ending with an exception; the wandb run is marked failed.
        join_timeout: see :class:`CleanExit`.
        terminate_timeout: see :class:`CleanExit`.
    """
    # wandb first: finishing a run needs its internal process, which step 3 would stop.
    steps: list[tuple[str, Callable[[], None]]] = [
        ("finish the wandb run", lambda: _finish_wandb(failed=failed)),
        ("destroy the process group", _destroy_process_group),
        ("stop child processes", lambda: _stop_children(join_timeout, terminate_timeout)),
        ("look for non-daemon threads", _warn_about_threads),
    ]
    for what, step in steps:
        try:
            step()
        except Exception:
            logger.warning("clean_exit: could not %s", what, exc_info=True)


def _finish_wandb(*, failed: bool) -> None:
    """Finish the active wandb run, if the process has one.

    Only looks at an already imported wandb: a run cannot be active otherwise, and importing
    wandb costs a second or more.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    logger.info("clean_exit: finishing wandb run")
    # exit_code exists in every wandb from 0.10 to today; 1 marks the run as failed.
    wandb.finish(exit_code=1 if failed else 0)


def _destroy_process_group() -> None:
    """Destroy the default ``torch.distributed`` process group, if one is initialised."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    logger.info("clean_exit: destroying the default process group")
    dist.destroy_process_group()


def _stop_children(join_timeout: float, terminate_timeout: float) -> None:
    """Join non-daemon ``multiprocessing`` children until a deadline, then end the rest.

    Daemon children are left alone: multiprocessing terminates those itself at exit.
    """
    children = [p for p in multiprocessing.active_children() if not p.daemon]
    if not children:
        return
    logger.info("clean_exit: waiting up to %.1fs for %s", join_timeout, _names(children))
    deadline = time.monotonic() + join_timeout
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))

    for doing, stop in (("terminating", BaseProcess.terminate), ("killing", BaseProcess.kill)):
        alive = [p for p in children if p.is_alive()]
        if not alive:
            return
        logger.warning("clean_exit: %s %s", doing, _names(alive))
        for child in alive:
            stop(child)
        deadline = time.monotonic() + terminate_timeout
        for child in alive:
            child.join(max(0.0, deadline - time.monotonic()))

    alive = [p for p in children if p.is_alive()]
    if alive:
        logger.error("clean_exit: still alive after SIGKILL: %s", _names(alive))


def _warn_about_threads() -> None:
    """Log the non-daemon threads still running: the interpreter waits for them at exit."""
    blocking = [
        t
        for t in threading.enumerate()
        if t not in (threading.current_thread(), threading.main_thread()) and not t.daemon
    ]
    if blocking:
        logger.warning(
            "clean_exit: non-daemon threads still running will delay exit: %s",
            ", ".join(t.name for t in blocking),
        )


def _names(processes: list[BaseProcess]) -> str:
    return ", ".join(f"{p.name} (pid {p.pid})" for p in processes)
