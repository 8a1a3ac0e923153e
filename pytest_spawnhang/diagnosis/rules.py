"""Known hangs as data: ``rules.toml`` in this package, read by one small matcher.

A rule matches a thread on a wait chain (``waiter``) and, where it has a ``target``, one of that
thread's edges and the process or thread at its end. All the matches of one rule make one
finding, whose texts are the rule's templates filled with what was matched. Adding a rule is
adding an entry to the file; ``load_rules`` checks it at once, so a typo fails loudly instead of
silently matching nothing.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path

from ..model import Finding, WaitEdge
from .states import PROCESS, Node, Scene

RULES_FILE = "rules.toml"
TEMPLATES = ("summary", "explanation", "advice")
VARIABLES = (
    "waiter", "target", "target_role", "thread", "target_thread", "where", "target_where",
    "target_state", "detail", "collectives", "joined_by", "is", "has", "its",
)


@dataclass(frozen=True)
class NodePattern:
    role: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    thread: str | None = None  # regex over the thread's name
    frames: tuple[str, ...] = ()  # regexes over "function file"; each must match some frame
    not_role: tuple[str, ...] = ()
    not_state: tuple[str, ...] = ()
    not_frames: tuple[str, ...] = ()
    edge: tuple[str, ...] = ()  # target only: the kinds of edge that lead to it

    def matches(self, scene: Scene, node: Node) -> bool:
        proc = scene.procs.get(node[0])
        role = proc.role if proc else ""
        kind = scene.reading(node).state.kind
        thread = scene.thread(node)
        name = thread.name if thread else None
        texts = [f"{f.function} {f.file}" for f in thread.frames] if thread else []
        return (
            (not self.role or role in self.role) and role not in self.not_role
            and (not self.state or kind in self.state) and kind not in self.not_state
            and (self.thread is None or re.search(self.thread, name or "") is not None)
            and all(any(re.search(rx, t) for t in texts) for rx in self.frames)
            and not any(re.search(rx, t) for rx in self.not_frames for t in texts)
        )


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    summary: str
    explanation: str
    advice: str
    waiter: NodePattern = field(default_factory=NodePattern)
    target: NodePattern | None = None


@dataclass
class Match:
    """What one rule matched: its finding and its lines for the summary."""

    rule: Rule
    finding: Finding
    summary: list[str]


def load_rules(path: str | Path | None = None) -> tuple[Rule, ...]:
    """The rules of ``path``, or those shipped in the package; raises ValueError on a bad rule."""
    if path is None:
        return _packaged_rules()
    return _parse(Path(path).read_text(encoding="utf-8"), str(path))


@cache
def _packaged_rules() -> tuple[Rule, ...]:
    text = resources.files(__package__).joinpath(RULES_FILE).read_text(encoding="utf-8")
    return _parse(text, RULES_FILE)


def _parse(text: str, source: str) -> tuple[Rule, ...]:
    rules = []
    for entry in tomllib.loads(text).get("rule", []):
        where = f"{source}: rule {entry.get('id', '?')!r}"
        try:
            rule = Rule(**{**entry, "waiter": _pattern(entry.get("waiter", {})),
                           "target": _pattern(entry["target"]) if "target" in entry else None})
            for name in TEMPLATES:
                getattr(rule, name).format_map({v: "" for v in VARIABLES})
            for pattern in (rule.waiter, rule.target):
                for regex in _regexes(pattern):
                    re.compile(regex)
        except (TypeError, KeyError, IndexError, ValueError, re.error) as exc:
            raise ValueError(f"{where}: {exc!r}") from exc
        rules.append(rule)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{source}: rule ids must be unique: {ids}")
    return tuple(rules)


def _pattern(table: dict) -> NodePattern:
    known = {f.name for f in fields(NodePattern)}
    if unknown := set(table) - known:
        raise KeyError(f"unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return NodePattern(**{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})


def _regexes(pattern: NodePattern | None) -> list[str]:
    if pattern is None:
        return []
    return [*pattern.frames, *pattern.not_frames, *([pattern.thread] if pattern.thread else [])]


def match_rules(rules: tuple[Rule, ...], scene: Scene, edges: list[WaitEdge],
                depth: dict[Node, int], roster: str) -> list[Match]:
    """Every rule that matches a thread on a chain; those nearest the launcher first, then in
    the file's order. ``depth``: the nodes on chains, and their distance from the launcher."""
    by_waiter: dict[Node, list[WaitEdge]] = {}
    for edge in edges:
        by_waiter.setdefault((edge.waiter_pid, edge.waiter_thread or PROCESS), []).append(edge)
    matches, nearest = [], []
    for rule in rules:
        pairs: list[tuple[Node, WaitEdge | None]] = []
        for node in sorted(depth):
            if not rule.waiter.matches(scene, node):
                continue
            if rule.target is None:
                pairs.append((node, None))
                continue
            pairs += [(node, e) for e in by_waiter.get(node, [])
                      if (not rule.target.edge or e.kind in rule.target.edge)
                      and rule.target.matches(scene, _target(scene, e))]
        if pairs:
            matches.append(_render(rule, scene, edges, pairs, roster))
            nearest.append(min(depth[node] for node, _ in pairs))
    order = sorted(range(len(matches)), key=lambda i: nearest[i])  # stable: file order on ties
    return [matches[i] for i in order]


def _target(scene: Scene, edge: WaitEdge) -> Node:
    if edge.target_thread is None:
        return scene.main_node(edge.target_pid)
    return (edge.target_pid, edge.target_thread)


def _render(rule: Rule, scene: Scene, edges: list[WaitEdge],
            pairs: list[tuple[Node, WaitEdge | None]], roster: str) -> Match:
    waiters = [n for n, _ in pairs]
    targets = [_target(scene, e) for _, e in pairs if e is not None]
    waiter_pids = _unique(n[0] for n in waiters)
    target_pids = _unique(n[0] for n in targets)
    # Who waits for the waiters: the reader of a full queue, the launcher of a stuck rank.
    upstream = _unique(e.waiter_pid for e in edges
                       if e.target_pid in waiter_pids and e.waiter_pid not in waiter_pids)
    plural = len(waiter_pids) > 1
    values = {
        "waiter": scene.names(waiter_pids),
        "target": scene.names(target_pids),
        "target_role": " and ".join(_unique(
            scene.procs[p].label for p in target_pids if p in scene.procs)),
        "thread": _thread_names(scene, waiters),
        "target_thread": _thread_names(scene, targets),
        "where": scene.reading(waiters[0]).state.detail,
        "target_where": scene.reading(targets[0]).state.detail if targets else "",
        "target_state": scene.describe(targets[0]) if targets else "",
        "detail": "; ".join(_unique(e.detail for _, e in pairs if e is not None)),
        "collectives": roster,
        "joined_by": scene.names(upstream) or "nothing else",
        "is": "are" if plural else "is",
        "has": "have" if plural else "has",
        "its": "their" if plural else "its",
    }
    threads = _unique(n[1] for n in [*waiters, *targets] if n[1])
    finding = Finding(
        rule=rule.id, title=rule.title,
        explanation=" ".join(rule.explanation.format_map(values).split()),
        advice=" ".join(rule.advice.format_map(values).split()),
        pids=_unique([*waiter_pids, *target_pids]), threads=threads,
    )
    summary = [line for line in rule.summary.format_map(values).splitlines() if line.strip()]
    return Match(rule, finding, summary)


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def _thread_names(scene: Scene, nodes: list[Node]) -> str:
    names = _unique(f"'{t.name}'" if t and t.name else "(unnamed)"
                    for t in (scene.thread(n) for n in nodes))
    return ", ".join(names)
