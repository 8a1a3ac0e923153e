"""Leftover processes of tests that did not hang (``--spawnhang-leaks=warn|reap|fail``).

Each new process belongs to what was running when it appeared: a test, or the set-up of a fixture
above function scope. An owner's processes are judged when the owner ends (a test's teardown, a
fixture's finalisation), never after each test, so that a session's pool lives on without a word.
What is found goes out as a ``LeftoverEvent`` through ``emit``, as every other summary event does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .events import LeftoverEvent, ProcessInfo

if TYPE_CHECKING:
    from ..engine import ProcessTracker as Tracker

NO_INTERRUPT_HERE = True  # the watcher's SIGALRM must not fail a phase from this code

# Under leaks=warn a process is listed only if it is still alive this long after its owner ended
# (checked at the end of a later test, or of the session): the owner may have just stopped it,
# and waiting for it there would cost every test that keeps a pool on purpose.
WARN_AFTER_S = 0.5

Emit = Callable[[LeftoverEvent], None]


@dataclass
class _Suspect:
    """Processes an owner left running under leaks=warn, not yet listed."""

    owner: str
    since: float
    tracker: Tracker
    pids: frozenset[int]


@dataclass
class _Owned:
    """Processes that appeared while a fixture above function scope was being set up."""

    label: str
    pids: frozenset[int]
    trackers: list[Tracker]


class Leaks:
    """Owners of processes, and the leaks policy applied to what an owner leaves alive."""

    def __init__(self, policy: str, emit: Emit) -> None:
        self.policy = policy  # the session's; a test's marker may override it
        self.emit = emit
        self.owned: dict[Any, _Owned] = {}  # by FixtureDef
        self.claimed: frozenset[int] = frozenset()  # children that fixtures own
        self.owner_of: dict[int, str] = {}  # pid -> owner, of the processes already listed
        self.suspects: list[_Suspect] = []

    def judge(self, owner: str, tracker: Tracker, policy: str | None) -> str | None:
        """Apply the leaks policy to what ``owner`` left alive; a failure message or None."""
        from .capture import alive, reap  # psutil and the engine: only once a process is left

        policy = policy or self.policy
        left = alive(tracker, wait=policy != "warn")
        if not left:
            return None
        if policy == "warn":  # listed later, if they are still alive then: no wait here
            pids = frozenset(s.pid for s in left)
            self.suspects.append(_Suspect(owner, time.monotonic(), tracker, pids))
            return None
        processes = self._leftover(owner, policy, left, reap(tracker))
        if policy != "fail":
            return None
        return (f"spawnhang: {len(left)} process(es) outlived {owner} (leaks=fail; reaped):\n"
                + "\n".join(f"  pid {p.pid}: {p.cmdline}" for p in processes))

    def list_suspects(self, final: bool) -> None:
        """List the processes left under leaks=warn that are still alive WARN_AFTER_S after
        their owner ended (or, at the end of the session, at all)."""
        if not self.suspects:
            return
        now, waiting = time.monotonic(), []
        for suspect in self.suspects:
            if not final and now - suspect.since < WARN_AFTER_S:
                waiting.append(suspect)
                continue
            left = [s for s in suspect.tracker.alive() if s.pid in suspect.pids]
            if left:
                self._leftover(suspect.owner, "warn", left, [])
        self.suspects = waiting

    def _leftover(self, owner: str, policy: str, left: list[Any],
                  survivors: list[int]) -> list[ProcessInfo]:
        from .capture import describe

        processes = [describe(s) for s in left]
        self.emit(LeftoverEvent(owner, policy, processes, survivors))
        for proc in processes:
            self.owner_of[proc.pid] = owner
        return processes

    def fixture_started(self, fixturedef: Any, new: frozenset[int]) -> frozenset[int]:
        """A fixture above function scope started ``new``: it owns them until it is finalised.
        Returns the pids it takes over (not already claimed by another fixture)."""
        new = new - self.claimed
        if new:
            from .capture import subtree

            self.claimed |= new
            label = f"fixture {fixturedef.argname!r} ({fixturedef.scope} scope)"
            self.owned[fixturedef] = _Owned(label, new, [subtree(p) for p in new])
        return new

    def fixture_finalized(self, fixturedef: Any) -> list[str]:
        """Judge what a finalised fixture leaves alive; the failure messages (leaks=fail)."""
        owned = self.owned.pop(fixturedef, None)
        if owned is None:
            return []
        self.claimed -= owned.pids
        messages = [self.judge(owned.label, tracker, None) for tracker in owned.trackers]
        return [m for m in messages if m is not None]
