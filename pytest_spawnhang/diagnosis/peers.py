"""Wait-for edges from the kernel's view (``Thread.wait.peers``): a reader of a pipe waits for
the holders of its write end, a socket for the process at the other end, ``wait4`` for the
child, and a thread polling in a loop (a short sleep, re-armed) for its live children.

They are drawn only for threads whose stack gave no edge: a stack names the operation (a
collective, a join), which says more than the socket under it."""

from __future__ import annotations

from ..model import Thread, Wait, WaitEdge, WaitPeer
from .states import GONE, Node, Scene, and_list

# A sleep this short, re-armed in a loop, is polling for something: torch's MultiProcessTestCase
# sleeps 0.1 s between looks at its children's exit codes.
POLL_SLEEP_S = 1.0
# multiprocessing's helpers wait on the program's pipes by design, all its life: not evidence.
HELPERS = ("resource_tracker", "forkserver")
VERBS = {"read": "reads", "write": "writes to", "poll": "polls", "accept": "accepts on",
         "connect": "connects to", "child": "waits for"}
EDGE_KINDS = {"pipe": "pipe", "child": "join"}  # else "socket"


def kernel_edges(scene: Scene, covered: set[Node]) -> list[WaitEdge]:
    """Edges for every thread with a kernel wait and no edge read from its stack."""
    edges: list[WaitEdge] = []
    for node in scene.readings:
        if node in covered:
            continue
        thread = scene.thread(node)
        proc = scene.procs.get(node[0])
        if thread is None or thread.wait is None or proc is None or proc.role in HELPERS:
            continue
        edges += _peer_edges(scene, node, thread.wait) or _polling_edges(scene, node, thread)
    return edges


def _peer_edges(scene: Scene, node: Node, wait: Wait) -> list[WaitEdge]:
    peers = [p for p in wait.peers if p.pid is not None and p.inside and p.pid != node[0]
             and scene.alive(p.pid)]
    if not peers or wait.kind not in VERBS:
        return []
    what = wait.fds[0] if wait.fds else ""
    kind = "join" if wait.kind == "child" else EDGE_KINDS.get(what.split(":")[0], "socket")
    evidence = _evidence(scene, wait, peers)
    return [WaitEdge(node[0], p.pid, kind, evidence, waiter_thread=node[1]) for p in peers]


def _evidence(scene: Scene, wait: Wait, peers: list[WaitPeer]) -> str:
    """"reads pipe:[123]; its only write end is held by launcher (pid 42)"."""
    verb = VERBS[wait.kind]
    if wait.kind == "child":
        return f"{wait.syscall}: {verb} {'its child' if len(peers) == 1 else 'its children'}"
    fds = ", ".join(wait.fds[:2]) + (f" and {len(wait.fds) - 2} more" if len(wait.fds) > 2
                                     else "")
    relations: dict[str, list[int]] = {}
    for peer in peers:
        relations.setdefault(peer.relation, []).append(peer.pid or 0)
    said = []
    for relation, pids in relations.items():
        held, _, rest = relation.partition(" held by")
        named = and_list([_named(scene, p) for p in pids])
        if rest or relation.endswith("held by"):
            only = "only " if len(pids) == 1 and held.endswith("end") else ""
            said.append(f"its {only}{held} is held by {named}")
        else:
            said.append(f"{relation} {named}")
    return f"{verb} {fds}; " + "; ".join(said)


def _named(scene: Scene, pid: int) -> str:
    name = scene.name(pid)
    return name if f"pid {pid}" in name else f"{name} (pid {pid})"


def _polling_edges(scene: Scene, node: Node, thread: Thread) -> list[WaitEdge]:
    """A main thread in a short sleep re-armed in a loop, with live children: it polls them."""
    wait = thread.wait
    proc = scene.procs.get(node[0])
    if (wait is None or proc is None or wait.kind != "sleep" or not proc.is_main(thread)
            or wait.polling is False or wait.endless or wait.left_s is None
            or wait.left_s > POLL_SLEEP_S):
        return []
    kids = [p.pid for p in scene.report.processes if p.ppid == node[0]
            and p.state not in GONE and p.role not in HELPERS]
    where = scene.reading(node).state.detail.split(" (kernel")[0]
    detail = f"polls its children in a loop, sleeping under {POLL_SLEEP_S:g} s at a time: {where}"
    return [WaitEdge(node[0], kid, "join", detail, waiter_thread=node[1]) for kid in kids]
