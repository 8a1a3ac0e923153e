"""One node's side of a job: hear any node's trigger, publish ours, trade reports, merge.

Keys (under ``spawnhang/<job id>/``): ``trigger`` ("<node> <trigger>", set once, by the first
node to call a hang), ``joined/<node>`` (the host), ``report/<node>`` (that node's report JSON,
published after its dump and before its reap). A node waits at most ``wait_s`` for the others'
reports; those that never came are named missing in the merged report.

For hang detection across nodes (docs/stall.md), each node also keeps ``waits/<node>`` current:
its latest reading ("closed", "polling" or none), the TCP addresses its processes hold, and when;
``detected`` names the one node that calls a hang every node agrees on.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable

from pytest_spawnhang import engine
from pytest_spawnhang.model import Job, Report

from .membership import Membership
from .merge import merge_reports
from .store import Store, open_store

POLL_S = 0.05  # how often a node looks for another's trigger (one small request)
WAIT_S = 10.0  # how long a node waits for the others' reports
# A node whose reading is older than this is not watching (its harness died, or its clock is
# far off): it cannot agree to a hang, so its waits fall to the deadline.
STALE_S = 5.0
# Which readings of the other nodes agree with a rule this node would call.
AGREES = {"closed wait": {"closed"}, "polling without progress": {"closed", "polling"}}


class Coordinator:
    def __init__(self, member: Membership, wait_s: float = WAIT_S,
                 store_factory: Callable[[Membership], Store] = open_store) -> None:
        self.member = member
        self.wait_s = wait_s
        self.store_factory = store_factory
        self.store: Store | None = None
        self.ready = threading.Event()  # the store is open (or failed to open)
        self.done = threading.Event()  # this node is past its trigger: stop listening
        self.problem: str | None = None
        self.merged: Report | None = None
        self._lock = threading.Lock()  # the store's client is shared by two threads
        self._waits: dict[int, dict] = {}  # the other nodes' latest readings
        self._mine: frozenset[str] = frozenset()  # this harness's own TCP addresses

    def start(self, fire: Callable[[str], None]) -> None:
        """Open the store and listen for a trigger in a thread; ``fire(trigger)`` ends the watch."""
        threading.Thread(target=self._listen, args=(fire,), name="spawnhang-job",
                         daemon=True).start()

    def _listen(self, fire: Callable[[str], None]) -> None:
        try:
            self.store = self.store_factory(self.member)
            self.store.set(f"joined/{self.member.node_rank}", self.member.host.encode())
        except Exception as exc:  # torch's store errors are RuntimeErrors of several kinds
            self.problem = f"cannot reach the job's {self.member.where}: {exc}"
            print(f"spawnhang: {self.problem}; this node runs alone", file=sys.stderr)
            return
        finally:
            self.ready.set()
        while not self.done.wait(POLL_S):
            try:
                with self._lock:
                    value = self.store.get("trigger")
            except Exception:  # the store went away (its host ended): nobody can fire us now
                return
            if value is not None:
                if int(value.split()[0]) != self.member.node_rank and not self.done.is_set():
                    fire("job")
                return

    # -- the detector's view of the other nodes (engine.OtherNodes) ----------------------------

    def addresses(self) -> frozenset[str]:
        others = (a for state in self._waits.values() for a in state["addresses"])
        return self._mine.union(others)

    def share(self, quiet: str | None, addresses: frozenset[str]) -> None:
        if self.store is None or self.done.is_set():
            return
        me = self.member.node_rank
        # This harness's own connection to the store is part of the run too (on the node that
        # hosts the store, the other nodes' harnesses wait on it).
        self._mine = engine.held_addresses([os.getpid()])
        state = {"quiet": quiet, "addresses": sorted(addresses | self._mine), "at": time.time()}
        try:
            with self._lock:
                self.store.set(f"waits/{me}", json.dumps(state).encode())
                found = {node: self.store.get(f"waits/{node}")
                         for node in range(self.member.nnodes) if node != me}
        except Exception:  # the store went away: no node can agree any more
            self._waits = {}
            return
        self._waits = {node: json.loads(data) for node, data in found.items() if data}

    def agree(self, rule: str) -> bool:
        if self.store is None or len(self._waits) < self.member.nnodes - 1:
            return False
        now = time.time()
        if not all(now - state["at"] < STALE_S and state["quiet"] in AGREES[rule]
                   for state in self._waits.values()):
            return False
        me = str(self.member.node_rank).encode()
        try:
            with self._lock:
                return self.store.first("detected", me) == me
        except Exception:
            return False

    def after_dump(self, report: Report) -> None:
        """Between the dump and the reap: say we called it (if we did), publish our part, wait
        for the others' parts, merge."""
        self.done.set()
        started = time.monotonic()
        self.stamp(report)
        if self.ready.wait(self.wait_s) and self.store is not None:
            try:
                self._exchange(report)
            except Exception as exc:
                self.problem = f"the job's store failed: {exc}"
        if self.merged is None:  # alone: merge what we have, every other node missing
            self.merged = merge_reports([report], self.member.job_id, self.member.nnodes)
        report.timings["job_wait_s"] = time.monotonic() - started

    def _exchange(self, report: Report) -> None:
        assert self.store is not None
        me = self.member.node_rank
        if report.trigger != "job":  # the capture began right after our watch fired
            fired_at = time.time() - report.timings.get("dump_s", 0.0) - report.timings.get(
                "diagnose_s", 0.0)
            self.store.first("trigger", f"{me} {report.trigger} {fired_at:.3f}".encode())
        self.store.set(f"report/{me}", json.dumps(report.to_dict()).encode())
        reports = {me: report}
        deadline = time.monotonic() + self.wait_s
        while len(reports) < self.member.nnodes and time.monotonic() < deadline:
            for node in range(self.member.nnodes):
                if node not in reports and (data := self.store.get(f"report/{node}")):
                    reports[node] = Report.from_dict(json.loads(data))
            time.sleep(POLL_S)
        first = (self.store.get("trigger") or b"").decode().split()
        self.merged = merge_reports(list(reports.values()), self.member.job_id,
                                    self.member.nnodes, first_node=int(first[0]) if first else None)
        if first and self.merged.job is not None:
            self.merged.job.first_at = float(first[2])
            report.timings["job_trigger_to_merged_s"] = time.time() - float(first[2])

    def finish(self, report: Report) -> Report | None:
        """After the run: a node whose program failed also fires the others (their ranks wait
        for ours); a clean exit merges nothing."""
        self.done.set()
        self.stamp(report)
        if report.verdict == "fail":
            self.after_dump(report)
        return self.merged

    def stamp(self, report: Report) -> None:
        """Mark this node's report and its processes with the node and host."""
        member = self.member
        report.job = Job(id=member.job_id, nnodes=member.nnodes, node=member.node_rank,
                         host=member.host)
        for proc in report.processes:
            proc.node, proc.host = member.node_rank, member.host
