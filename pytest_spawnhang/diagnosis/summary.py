"""The few lines a person reads first: who the launcher waits for, then what the matched rules
say; without a match, where each root cause waits, and that no known pattern matched."""

from __future__ import annotations

from ..model import WaitEdge
from .graph import Walk
from .rules import Match
from .states import PROCESS, Node, Scene, and_list

MAX_LINES = 6
# Kinds where a process is merely slow or waiting for the outside world, not stuck on the tree.
BENIGN = ("sleep", "busy", "socket", "io")
SKIP_ROLES = ("resource_tracker", "forkserver")  # always there, never the story
_PLURAL = {"is": "are", "has": "have", "waits": "wait", "joins": "join", "runs": "run"}


def summarize(scene: Scene, edges: list[WaitEdge], walk: Walk, matches: list[Match]) -> str:
    if not scene.report.processes:
        return "no process was recorded"
    lines = _launcher_lines(scene, edges)
    for match in matches:
        lines += match.summary
    if not matches:
        lines += _chain_lines(scene, edges, walk)
        lines += _no_match_lines(scene, walk)
        lines += _bystander_line(scene, walk)
    return "\n".join(lines[:MAX_LINES])


def _launcher_lines(scene: Scene, edges: list[WaitEdge]) -> list[str]:
    lines = []
    for launcher in scene.report.by_role("launcher"):
        node = scene.main_node(launcher.pid)
        line = _node_line(scene, edges, [node])
        gone = [p.pid for p in scene.report.by_role("rank") if not scene.alive(p.pid)]
        if gone and _out_edges(edges, node):
            line += f"; {scene.names(gone)} {'have' if len(gone) > 1 else 'has'} exited"
        lines.append(line)
    return lines


def _chain_lines(scene: Scene, edges: list[WaitEdge], walk: Walk) -> list[str]:
    """One line per step after the launcher, nodes in the same state grouped into one line;
    the last step of a chain also names the thread nobody will wake, if not the main one."""
    launchers = {p.pid for p in scene.report.by_role("launcher")}
    root_of: dict[int, Node] = {}
    for root in walk.roots:
        root_of.setdefault(root[0], root)
    # Threads of a launcher that its own join waits for (a deadlock inside one process).
    steps = [root for root in walk.roots
             if root[0] in launchers and root != scene.main_node(root[0])]
    for chain in walk.chains:
        for pid in chain:
            if pid in launchers:
                continue
            steps.append(scene.main_node(pid))
            if pid == chain[-1] and root_of.get(pid, steps[-1]) != steps[-1]:
                steps.append(root_of[pid])
    groups: dict[str, list[Node]] = {}
    for node in dict.fromkeys(steps):  # in order, each once
        groups.setdefault(_what(scene, edges, node), []).append(node)
    return [_node_line(scene, edges, nodes) for nodes in groups.values()][:MAX_LINES - 2]


def _node_line(scene: Scene, edges: list[WaitEdge], nodes: list[Node]) -> str:
    """'rank 0 and rank 1 wait for ...': the first word of the phrase agrees with the subject."""
    phrase = _what(scene, edges, nodes[0])
    if len(nodes) > 1:
        verb, _, rest = phrase.partition(" ")
        phrase = f"{_PLURAL.get(verb, verb)} {rest}"
    pids = list(dict.fromkeys(n[0] for n in nodes))
    where = ""
    if len(pids) == 1:  # name the threads, unless it is the process's main one
        named = [f"'{t.name}'" for n in nodes
                 if n != scene.main_node(n[0]) and (t := scene.thread(n)) and t.name]
        if named:
            where = f" (thread{'s' if len(named) > 1 else ''} {and_list(named)})"
    return f"{scene.names(pids)}{where} {phrase}"


def _what(scene: Scene, edges: list[WaitEdge], node: Node) -> str:
    """A node's state as a phrase; for a waiter, whom it waits for (by kind: join, thread...)."""
    out = _out_edges(edges, node)
    if not out:
        return scene.describe(node)
    if out[0].kind == "collective":
        op = scene.reading(node).fields.get("op")
        return f"is in {op}, waiting for {scene.names([e.target_pid for e in out])}"
    if out[0].kind == "thread":
        names = ", ".join(f"'{t.name}'" for e in out
                          if (t := scene.thread((e.target_pid, e.target_thread or PROCESS))))
        return f"waits for thread {names} ({scene.reading(node).why})"
    return f"waits for {scene.names([e.target_pid for e in out])} ({out[0].detail})"


def _out_edges(edges: list[WaitEdge], node: Node) -> list[WaitEdge]:
    return [e for e in edges if (e.waiter_pid, e.waiter_thread or PROCESS) == node]


def _no_match_lines(scene: Scene, walk: Walk) -> list[str]:
    roots = list(dict.fromkeys(n[0] for n in walk.roots))
    if all(scene.reading(node).state.kind in BENIGN for node in walk.roots):
        verb = "are" if len(roots) > 1 else "is"
        return [f"no known hang pattern matched: {scene.names(roots)} {verb} not blocked on "
                "another process or thread",
                "the program may just need more time (raise the timeout), or waits for "
                "something outside the tree"]
    return [f"no known hang pattern matched: nothing in the tree will wake {scene.names(roots)}",
            "the stacks below show where; a rule in rules.toml (docs/diagnosis.md) can name "
            "this hang next time"]


def _bystander_line(scene: Scene, walk: Walk) -> list[str]:
    on_chain = {pid for chain in walk.chains for pid in chain}
    others = [p.pid for p in scene.report.processes if p.pid not in on_chain
              and scene.alive(p.pid) and p.role not in SKIP_ROLES]
    return [f"also alive, waited for by nobody: {scene.names(others)}"] if others else []
