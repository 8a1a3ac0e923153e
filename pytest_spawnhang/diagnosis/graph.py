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

from ..model import Thread, WaitEdge
from .peers import kernel_edges
from .states import DAEMON_THREADS, PROCESS, Node, Scene, rank_ranges

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


@dataclass
class Walk:
    chains: list[list[int]] = field(default_factory=list)
    roots: list[Node] = field(default_factory=list)  # what nobody will wake
    depth: dict[Node, int] = field(default_factory=dict)  # reachable nodes: steps from the start


def build_edges(scene: Scene) -> list[WaitEdge]:
    edges: list[WaitEdge] = []
    places = _rank_places(scene)
    for node, reading in scene.readings.items():
        selector = reading.waits_for
        if selector == "peers":
            edges += _collective_edges(scene, node, places)
        elif selector in ("children", "mp_children", "ranks"):
            edges += [WaitEdge(node[0], pid, "join", reading.why, waiter_thread=node[1])
                      for pid in _target_processes(scene, node[0], selector)]
        elif selector is not None:
            edges += [WaitEdge(node[0], node[0], "thread", f"{reading.why}: {t.name}",
                               waiter_thread=node[1], target_thread=t.id)
                      for t in _target_threads(scene, node, selector)]
    covered = {node for node, reading in scene.readings.items() if reading.waits_for}
    return edges + kernel_edges(scene, covered)


def _rank_places(scene: Scene) -> dict[int, tuple[int, str | None]]:
    """pid -> (rank, the collective its main thread is in, if any), for every rank."""
    places = {}
    for proc in scene.report.by_role("rank"):
        if proc.rank is not None:
            reading = scene.reading(scene.main_node(proc.pid))
            in_op = reading.fields.get("op") if reading.state.kind == "collective" else None
            places[proc.pid] = (proc.rank, in_op)
    return places


def _target_processes(scene: Scene, pid: int, selector: str) -> list[int]:
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


def _target_threads(scene: Scene, node: Node, selector: str) -> list[Thread]:
    proc = scene.procs[node[0]]
    others = [t for t in proc.threads if t.id != node[1] and not proc.is_main(t)]
    if selector == "threads":  # threading._shutdown: every thread not known to be a daemon
        return [t for t in others if not re.search(DAEMON_THREADS, t.name or "")]
    if selector.startswith("thread:"):
        return [t for t in others if re.search(selector.removeprefix("thread:"), t.name or "")]
    # A bare Thread.join: whom it joins is only certain when there is one candidate, or when
    # every candidate is blocked on a lock or event (whichever it joins, it never ends).
    if len(others) == 1 or (others and all(
            scene.reading((node[0], t.id)).state.kind == "lock" for t in others)):
        return others
    return []


def _collective_edges(scene: Scene, node: Node,
                      places: dict[int, tuple[int, str | None]]) -> list[WaitEdge]:
    if node[0] not in places:
        return []
    fields = scene.reading(node).fields
    op = fields.get("op", "")
    peer = next((int(v) for k in PEER_LOCALS if (v := fields.get(k, "")).isdigit()), None)
    edges = []
    for pid, (rank, other_op) in places.items():
        if pid == node[0] or (peer is not None and rank != peer):
            continue
        # In the same collective, at the matching end of a send/recv, or in the same send/recv
        # (so waiting for a peer of its own): that rank does not hold this one up.
        if other_op == op or other_op in P2P_PARTNERS.get(op, ()):
            continue
        state = f"is in {other_op}" if other_op else scene.describe(scene.main_node(pid))
        edges.append(WaitEdge(node[0], pid, "collective",
                              f"{op} waits for {scene.name(pid)}, which {state}",
                              waiter_thread=node[1]))
    return edges


def walk(scene: Scene, edges: list[WaitEdge]) -> Walk:
    """The chains from the launcher along the edges, each up to a root cause.

    A root cause is a node that waits for nothing, or a deadlock: a cycle nothing outside it can
    break (a strongly connected component no edge leaves; mismatched collectives). All nodes of
    such a cycle are root causes, and a chain ends where it enters one. There is a chain through
    each node the launcher waits for, on the shortest way from it to a root cause, and one to
    every root cause no such chain reaches. Everything is linear in the size of the graph.
    """
    out: dict[Node, list[Node]] = {}
    for edge in edges:
        target = (scene.main_node(edge.target_pid) if edge.target_thread is None
                  else (edge.target_pid, edge.target_thread))
        out.setdefault((edge.waiter_pid, edge.waiter_thread or PROCESS), []).append(target)
    result = Walk()
    for start in [scene.main_node(pid) for pid in _starts(scene)]:
        _walk_from(start, out, result)
    # Blocked groups the launcher's waits do not lead to (workers waiting on each other while
    # the launcher polls a queue): each gets its own chains.
    for start in list(out):
        if start not in result.depth:
            _walk_from(start, out, result)
    return result


def _walk_from(start: Node, out: dict[Node, list[Node]], result: Walk) -> None:
    parent = _bfs(start, out, result.depth)
    component = _components(list(parent), out)
    left = {component[n] for n in parent for m in out.get(n, [])
            if component[m] != component[n]}  # components an edge leaves
    sinks = {component[n] for n in parent} - left
    roots = [n for n in parent if component[n] in sinks]
    result.roots += [n for n in roots if n not in result.roots]
    ahead = _toward(roots, out, parent)
    paths = [[start, *_follow(t, ahead)] for t in out.get(start, [])] or [[start]]
    ends = {path[-1] for path in paths}
    paths += [_back(root, parent) for root in roots if root not in ends]
    for path in paths:
        pids = [n[0] for i, n in enumerate(path) if i == 0 or path[i - 1][0] != n[0]]
        if pids not in result.chains and len(result.chains) < MAX_CHAINS:
            result.chains.append(pids)


def _bfs(start: Node, out: dict[Node, list[Node]], depth: dict[Node, int]) -> dict[Node, Node]:
    """Every node reachable from ``start``, with its parent on a shortest path (start: itself)."""
    parent = {start: start}
    depth.setdefault(start, 0)
    queue = [start]
    for node in queue:  # grows while it is read: breadth first
        for nxt in out.get(node, []):
            if nxt not in parent:
                parent[nxt] = node
                depth[nxt] = min(depth.get(nxt, depth[node] + 1), depth[node] + 1)
                queue.append(nxt)
    return parent


def _components(nodes: list[Node], out: dict[Node, list[Node]]) -> dict[Node, Node]:
    """Strongly connected components (Kosaraju, iterative): node -> a representative."""
    order: list[Node] = []
    seen: set[Node] = set()
    for first in nodes:
        if first in seen:
            continue
        seen.add(first)
        stack = [(first, iter(out.get(first, [])))]
        while stack:
            node, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                stack.pop()
                order.append(node)
            elif nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, iter(out.get(nxt, []))))
    into: dict[Node, list[Node]] = {}
    for node in nodes:
        for nxt in out.get(node, []):
            into.setdefault(nxt, []).append(node)
    component: dict[Node, Node] = {}
    for head in reversed(order):
        if head in component:
            continue
        component[head] = head
        todo = [head]
        while todo:
            for prev in into.get(todo.pop(), []):
                if prev not in component:
                    component[prev] = head
                    todo.append(prev)
    return component


def _toward(roots: list[Node], out: dict[Node, list[Node]],
            reachable: dict[Node, Node]) -> dict[Node, Node]:
    """For every node that can reach a root cause: its next step on a shortest way there."""
    into: dict[Node, list[Node]] = {}
    for node in reachable:
        for nxt in out.get(node, []):
            into.setdefault(nxt, []).append(node)
    ahead = {root: root for root in roots}
    queue = list(roots)
    for node in queue:
        for prev in into.get(node, []):
            if prev not in ahead:
                ahead[prev] = node
                queue.append(prev)
    return ahead


def _follow(node: Node, ahead: dict[Node, Node]) -> list[Node]:
    path = [node]
    while ahead.get(path[-1], path[-1]) != path[-1]:
        path.append(ahead[path[-1]])
    return path


def _back(node: Node, parent: dict[Node, Node]) -> list[Node]:
    path = [node]
    while parent[path[-1]] != path[-1]:
        path.append(parent[path[-1]])
    return path[::-1]


def _starts(scene: Scene) -> list[int]:
    launchers = [p.pid for p in scene.report.processes if p.role == "launcher"]
    # Without a launcher (a report from `spawnhang dump`), start from the roots of the tree.
    return launchers or [p.pid for p in scene.report.processes if p.ppid not in scene.procs]


def root_pids(result: Walk) -> list[int]:
    return list(dict.fromkeys(node[0] for node in result.roots))


def collective_roster(scene: Scene) -> str:
    """"rank 0 in barrier, ranks 1-7 in recv, rank 8 has exited": where every rank is, ranks in
    the same place together."""
    places: dict[str, list[int]] = {}
    for proc in sorted(scene.report.by_role("rank"), key=lambda p: p.rank or 0):
        node = scene.main_node(proc.pid)
        reading = scene.reading(node)
        place = (f"in {reading.fields.get('op')}" if reading.state.kind == "collective"
                 else scene.describe(node))
        places.setdefault(place, []).append(proc.rank or 0)
    return ", ".join(f"{rank_ranges(ranks)} {place}" for place, ranks in places.items())
