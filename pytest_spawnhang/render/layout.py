"""Where each node and arrow of the report page's tree drawing sits: plain geometry over the
process views, in SVG user units (CSS pixels at 100% zoom). ``html`` turns it into a page."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..model import WaitEdge

if TYPE_CHECKING:
    from .views import ProcessView

# The tree drawing, in SVG user units (CSS pixels at 100% zoom).
NODE_W, NODE_H = 208, 58
SIBLING_GAP = 28  # between neighbouring subtrees
LAYER_GAP = 56  # between a parent and the row of its children
STACK_INDENT, STACK_GAP = 26, 10
# A parent with more leaf children than this stacks them in a column under itself (8 loader
# workers of one rank), so that wide jobs grow downwards instead of off the screen.
STACK_LEAVES_OVER = 4
MARGIN = 24  # also room for a root cause's badge, which pokes out of its box's corner
ARROW_SHIFT = 16  # arrows between rows run this far beside the centre line
SELF_LOOP = 44  # how far the loop of a process waiting on itself reaches right of its box
ARC_DEPTH = 22  # arrows along a row dip this far below it, and more the longer they are
WHERE_CHARS = 28  # the "where" line of a node is cut to this many characters

@dataclass
class Node:
    pid: int
    x: float
    y: float
    view: ProcessView | None  # None: a pid the diagnosis names that the report does not hold
    label: str
    where: str


@dataclass
class Arrow:
    edge: WaitEdge
    path: str
    label_x: float
    label_y: float
    label_anchor: str  # SVG text-anchor: the label sits beside the arrow, not on it


@dataclass
class Drawing:
    width: float
    height: float
    nodes: list[Node] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # parent -> child, as SVG path data
    arrows: list[Arrow] = field(default_factory=list)


def layout(views: dict[int, ProcessView], edges: list[WaitEdge], extra_pids: list[int]) -> Drawing:
    """A layered tree by parent pid: children in a row under their parent, which is centred
    over them; many leaf children stacked in a column instead. Then the wait-for arrows."""
    children: dict[int, list[int]] = {}
    for view in sorted(views.values(), key=lambda v: (v.proc.create_time, v.proc.pid)):
        if view.proc.ppid in views and view.proc.ppid != view.proc.pid:
            children.setdefault(view.proc.ppid, []).append(view.proc.pid)
    roots = [pid for pid, v in views.items() if pid not in children.get(v.proc.ppid, [])]
    roots += extra_pids
    drawing = Drawing(0, 0)
    positions: dict[int, tuple[float, float]] = {}

    def place(pid: int, left: float, top: float) -> tuple[float, float]:
        kids = [k for k in children.get(pid, []) if k not in positions]
        positions[pid] = (left, top)
        if not kids:
            return NODE_W, NODE_H
        if len(kids) > STACK_LEAVES_OVER and not any(children.get(k) for k in kids):
            rail_x = left + STACK_INDENT / 2
            for i, kid in enumerate(kids, start=1):
                y = top + i * (NODE_H + STACK_GAP)
                positions[kid] = (left + STACK_INDENT, y)
                drawing.links.append(f"M{rail_x:g},{top + NODE_H:g}V{y + NODE_H / 2:g}"
                                     f"H{left + STACK_INDENT:g}")
            return NODE_W + STACK_INDENT, NODE_H + len(kids) * (NODE_H + STACK_GAP)
        x, below = left, 0.0
        row_top = top + NODE_H + LAYER_GAP
        for kid in kids:
            width, height = place(kid, x, row_top)
            x, below = x + width + SIBLING_GAP, max(below, height)
        width = x - SIBLING_GAP - left
        positions[pid] = (left + (width - NODE_W) / 2, top)
        centre, mid_y = left + width / 2, top + NODE_H + LAYER_GAP / 2
        for kid in kids:
            kid_centre = positions[kid][0] + NODE_W / 2
            drawing.links.append(f"M{centre:g},{top + NODE_H:g}V{mid_y:g}H{kid_centre:g}"
                                 f"V{row_top:g}")
        return width, NODE_H + LAYER_GAP + below

    x, bottom = float(MARGIN), 0.0
    for root in [*roots, *views]:  # then any left out by a cycle of parent pids (pid reuse)
        if root in positions:
            continue
        width, height = place(root, x, MARGIN)
        x, bottom = x + width + SIBLING_GAP, max(bottom, MARGIN + height)
    drawing.width, drawing.height = x - SIBLING_GAP + MARGIN, bottom + MARGIN
    for pid, (nx, ny) in positions.items():
        view = views.get(pid)
        where = view.where.frame.function if view and view.where else ""
        if view and not where:
            where = view.proc.dump_error or ""
        label = view.proc.label if view else f"pid {pid}"
        drawing.nodes.append(Node(pid, nx, ny, view, label, _cut(where, WHERE_CHARS)))
    for edge in edges:
        if edge.target_pid in positions and edge.waiter_pid in positions:
            arrow = _arrow(edge, positions[edge.waiter_pid], positions[edge.target_pid])
            drawing.arrows.append(arrow)
            # Arcs under a row and loops beside a box reach past the boxes: grow to hold them.
            label_w = 7 * len(edge.kind)  # about 7 units a character at the labels' font size
            reach = label_w if arrow.label_anchor == "start" else label_w / 2
            drawing.width = max(drawing.width, arrow.label_x + reach + MARGIN)
            drawing.height = max(drawing.height, arrow.label_y + 10 + MARGIN)
    return drawing


def _arrow(edge: WaitEdge, waiter: tuple[float, float], target: tuple[float, float]) -> Arrow:
    """An arrow from box to box. Between rows: straight, shifted to one side of the centre line,
    so that it runs beside the parent-child link and the opposite direction runs on the other
    side. Along one row: an arc below the boxes."""
    (x1, y1), (x2, y2) = _centre(waiter), _centre(target)
    if (x1, y1) == (x2, y2):  # a process waiting on itself (one thread on another)
        right, top = x1 + NODE_W / 2, y1 - NODE_H / 4
        path = (f"M{right:g},{top:g}C{right + SELF_LOOP:g},{top - 24:g} {right + SELF_LOOP:g},"
                f"{top + NODE_H / 2 + 24:g} {right:g},{top + NODE_H / 2:g}")
        return Arrow(edge, path, right + SELF_LOOP * 0.75 + 4, y1, "start")
    if y1 == y2:
        # Below the row, where only leaf rows' children links run. From the right quarter of
        # one box to the left quarter of the other: left to right that is the inner pair of
        # quarters, right to left the outer pair, so two opposite arrows nest instead of cross.
        sx, ex, bottom = x1 + NODE_W / 4, x2 - NODE_W / 4, y1 + NODE_H / 2
        depth = ARC_DEPTH * (1.0 if x2 > x1 else 1.8) + 0.08 * abs(x2 - x1)
        path = f"M{sx:g},{bottom:g}Q{(sx + ex) / 2:g},{bottom + 2 * depth:g} {ex:g},{bottom:g}"
        return Arrow(edge, path, (sx + ex) / 2, bottom + depth, "middle")
    length = math.hypot(x2 - x1, y2 - y1)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    nx, ny = uy * ARROW_SHIFT, -ux * ARROW_SHIFT  # to the right of the direction of travel
    sx, sy = _box_exit((x1, y1), (x1 + nx, y1 + ny), ux, uy)
    ex, ey = _box_exit((x2, y2), (x2 + nx, y2 + ny), -ux, -uy)
    anchor = "middle" if abs(nx) < 1 else ("start" if nx > 0 else "end")
    return Arrow(edge, f"M{sx:.1f},{sy:.1f}L{ex:.1f},{ey:.1f}",
                 (sx + ex) / 2 + nx / 2, (sy + ey) / 2 + ny / 2, anchor)


def _centre(corner: tuple[float, float]) -> tuple[float, float]:
    return corner[0] + NODE_W / 2, corner[1] + NODE_H / 2


def _box_exit(centre: tuple[float, float], start: tuple[float, float], ux: float,
              uy: float) -> tuple[float, float]:
    """Where a ray from ``start``, inside the box around ``centre``, leaves that box."""
    reach = [
        (centre[0] + math.copysign(NODE_W / 2, ux) - start[0]) / ux if ux else math.inf,
        (centre[1] + math.copysign(NODE_H / 2, uy) - start[1]) / uy if uy else math.inf,
    ]
    scale = min(reach)
    return start[0] + ux * scale, start[1] + uy * scale


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


