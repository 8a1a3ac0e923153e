"""The wait-for graph: which thread waits for which process or thread, and the chains from the
launcher to the root causes (what nobody in the tree will wake).

Targets come from the process tree, since a stack without locals does not say whom a join
waits for: a process in ``BaseProcess.join`` or multiprocessing's ``_exit_function`` waits for
its live multiprocessing children, ``ProcessContext.join`` for the live ranks it started,
``threading._shutdown`` for the process's other non-daemon threads. A rank in a collective
waits for every rank that is not in the same (or, for send/recv, the matching) operation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..model import WaitEdge
from .states import DAEMON_THREADS, PROCESS, Node, Scene, is_main

_MP_CHILD = re.compile(r"multiprocessing\.(spawn|forkserver)|spawn_main|multiprocessing-fork")
NOT_JOINED = ("resource_tracker", "forkserver")  # started by multiprocessing, never joined
# Point-to-point operations wait for one peer, in the matching operation.
P2P_PARTNERS = {
    "send": ("recv", "irecv"), "isend": ("recv", "irecv"),
    "recv": ("send", "isend"), "irecv": ("send", "isend"),
    "send_object_list": ("recv_object_list",), "recv_object_list": ("send_object_list",),
}
PEER_LOCALS = ("local:src", "local:dst", "local:group_src", "local:group_dst")
MAX_CHAINS = 64  # thousands of ranks must not make thousands of chains
MAX_STEPS = 10_000  # paths tried, all starts together


@dataclass
class Walk:
    chains: list[list[int]] = field(default_factory=list)
    roots: list[Node] = field(default_factory=list)  # what nobody will wake
    depth: dict[Node, int] = field(default_factory=dict)  # steps from the launcher, per node


def build_edges(scene: Scene) -> list[WaitEdge]:
    edges: list[WaitEdge] = []
    for node, reading in scene.readings.items():
        selector = reading.waits_for
        if selector == "peers":
            edges += _collective_edges(scene, node)
        elif selector in ("children", "mp_children", "ranks"):
            edges += [WaitEdge(node[0], pid, "join", reading.why, waiter_thread=node[1])
                      for pid in target_processes(scene, node[0], selector)]
        elif selector is not None:
            edges += [WaitEdge(node[0], node[0], "thread", f"{reading.why}: {t.name}",
                               waiter_thread=node[1], target_thread=t.id)
                      for t in _target_threads(scene, node, selector)]
    return edges


def target_processes(scene: Scene, pid: int, selector: str) -> list[int]:
    if selector == "ranks":
        return [p.pid for p in scene.report.processes
                if p.role == "rank" and scene.alive(p.pid) and _descends(scene, p.pid, pid)]
    parents = {pid} | {p.pid for p in scene.report.processes
                       if p.ppid == pid and p.role == "forkserver"}
    waiter = scene.procs.get(pid)
    found = []
    for proc in scene.report.processes:
        if proc.ppid not in parents or proc.role in NOT_JOINED or not scene.alive(proc.pid):
            continue
        # A fork child runs the parent's command line; the others say they are multiprocessing's.
        is_mp = bool(_MP_CHILD.search(" ".join(proc.cmdline))) or proc.ppid != pid or (
            waiter is not None and proc.cmdline == waiter.cmdline)
        if selector == "children" or is_mp:
            found.append(proc.pid)
    return found


def _descends(scene: Scene, pid: int, ancestor: int) -> bool:
    seen: set[int] = set()
    proc = scene.procs.get(pid)
    while proc is not None and proc.pid not in seen:
        if proc.ppid == ancestor:
            return True
        seen.add(proc.pid)
        proc = scene.procs.get(proc.ppid)
    return False


def _target_threads(scene: Scene, node: Node, selector: str):
    proc = scene.procs[node[0]]
    others = [t for t in proc.threads if t.id != node[1] and not is_main(t, proc)]
    if selector == "threads":  # threading._shutdown: every thread not known to be a daemon
        return [t for t in others if not re.search(DAEMON_THREADS, t.name or "")]
    if selector.startswith("thread:"):
        return [t for t in others if re.search(selector.removeprefix("thread:"), t.name or "")]
    # A bare Thread.join: whom it joins is only certain when there is one candidate.
    return others if len(others) == 1 else []


def _collective_edges(scene: Scene, node: Node) -> list[WaitEdge]:
    waiter = scene.procs[node[0]]
    if waiter.role != "rank":
        return []
    fields = scene.reading(node).fields
    op = fields.get("op", "")
    peer = next((int(v) for k in PEER_LOCALS if (v := fields.get(k, "")).isdigit()), None)
    edges = []
    for proc in scene.report.processes:
        if proc.role != "rank" or proc.pid == waiter.pid or proc.rank is None:
            continue
        if peer is not None and proc.rank != peer:
            continue
        other = scene.reading(scene.main_node(proc.pid))
        other_op = other.fields.get("op") if other.state.kind == "collective" else None
        # Another rank in the same send/recv waits for its own peer, not for this one.
        if other_op == op or other_op in P2P_PARTNERS.get(op, ()):
            continue
        state = f"is in {other_op}" if other_op else scene.describe(scene.main_node(proc.pid))
        edges.append(WaitEdge(waiter.pid, proc.pid, "collective",
                              f"{op} waits for {scene.name(proc.pid)}, which {state}",
                              waiter_thread=node[1]))
    return edges


def walk(scene: Scene, edges: list[WaitEdge]) -> Walk:
    """The paths from the launcher along the edges, each up to a root cause.

    A root cause is a node that waits for nothing, or a deadlock: a cycle that nothing outside
    it can break (every node it reaches reaches it back; mismatched collectives). A path ends
    where it enters one, and all of that cycle's nodes are root causes.
    """
    out: dict[Node, list[Node]] = {}
    for edge in edges:
        target = (scene.main_node(edge.target_pid) if edge.target_thread is None
                  else (edge.target_pid, edge.target_thread))
        out.setdefault((edge.waiter_pid, edge.waiter_thread or PROCESS), []).append(target)
    reach: dict[Node, set[Node]] = {}

    def reachable(node: Node) -> set[Node]:
        if node not in reach:
            seen: set[Node] = set()
            todo = list(out.get(node, []))
            while todo:
                if (nxt := todo.pop()) not in seen:
                    seen.add(nxt)
                    todo += out.get(nxt, [])
            reach[node] = seen
        return reach[node]

    result = Walk()
    budget = MAX_STEPS
    for start in _starts(scene):
        stack = [[scene.main_node(start)]]
        while stack and budget > 0 and len(result.chains) < MAX_CHAINS:
            budget -= 1
            path = stack.pop()
            for depth, node in enumerate(path):
                result.depth[node] = min(depth, result.depth.get(node, depth))
            last = path[-1]
            nexts = [n for n in out.get(last, []) if n not in path]
            if nexts and not all(last in reachable(m) for m in reachable(last)):
                stack += [[*path, n] for n in reversed(nexts)]
                continue
            pids = [n[0] for i, n in enumerate(path) if i == 0 or path[i - 1][0] != n[0]]
            if pids not in result.chains:
                result.chains.append(pids)
            for root in [last, *sorted(reachable(last))]:
                if root not in result.roots:
                    result.roots.append(root)
    return result


def _starts(scene: Scene) -> list[int]:
    launchers = [p.pid for p in scene.report.processes if p.role == "launcher"]
    # Without a launcher (a report from `spawnhang dump`), start from the roots of the tree.
    return launchers or [p.pid for p in scene.report.processes if p.ppid not in scene.procs]


def root_pids(result: Walk) -> list[int]:
    return list(dict.fromkeys(node[0] for node in result.roots))


def collective_roster(scene: Scene) -> str:
    """"rank 0 in barrier, rank 1 in recv, rank 2 has exited": where every rank is."""
    parts = []
    for proc in sorted(scene.report.by_role("rank"), key=lambda p: p.rank or 0):
        reading = scene.reading(scene.main_node(proc.pid))
        if reading.state.kind == "collective":
            parts.append(f"{scene.name(proc.pid)} in {reading.fields.get('op')}")
        else:
            parts.append(f"{scene.name(proc.pid)} {scene.describe(scene.main_node(proc.pid))}")
    return ", ".join(parts)
