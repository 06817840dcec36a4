"""A workflow drawn as a graph: where each step sits and which arrows join them (pure).

The timeline reads left to right, one column per position; the steps of a parallel group stack
in their column. Arrows: position to position, ``dependsOn`` inside a group, and every rule that
jumps (a branch's or a diverge's ``goto``) as an arc, marked taken when the history took it.
Handlers (compensations, ``finally``) sit on a row of their own below. A code workflow has no
static shape: its steps are drawn in the order it reached them.

The layout is computed here and drawn by a template as SVG with presentation attributes only,
so a strict Content-Security-Policy (no inline styles) holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..model.compile import WorkflowDefinition

__all__ = ["Edge", "Graph", "Node", "layout", "layout_reached"]

NODE_W = 150
NODE_H = 36
GAP_X = 50
GAP_Y = 16
MARGIN = 12
LABEL_CHARS = 18  # a longer name is cut with an ellipsis in the box; the full name is its title


@dataclass(frozen=True, slots=True)
class Node:
    step: str
    x: int
    y: int
    phase: str  # the step's phase in this execution ("" on a workflow's own page)
    handler: bool = False

    @property
    def label(self) -> str:
        return self.step if len(self.step) <= LABEL_CHARS else self.step[: LABEL_CHARS - 1] + "…"

    @property
    def css(self) -> str:
        return "phase-" + (self.phase or "none").lower()


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    path: str  # an SVG path's d attribute
    kind: str  # "next", "depends" or "jump"
    label: str = ""
    taken: int = 0  # how often the history took this jump


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int

    def node(self, step: str) -> Node | None:
        return next((n for n in self.nodes if n.step == step), None)


def layout(
    definition: WorkflowDefinition,
    *,
    phases: Mapping[str, str] | None = None,
    jumps_taken: Mapping[tuple[str, str], int] | None = None,
) -> Graph:
    """The graph of a YAML workflow; ``phases`` colours the steps, ``jumps_taken`` marks arcs."""
    phases = phases or {}
    taken = jumps_taken or {}
    places: dict[str, Node] = {}
    rows = max((len(group) for group in definition.positions), default=1)
    for column, group in enumerate(definition.positions):
        for row, step in enumerate(group):
            places[step] = Node(step, _x(column), _y(row), phases.get(step, ""))
    handlers = [name for name, config in definition.steps.items() if config.handler]
    for column, step in enumerate(handlers):
        places[step] = Node(step, _x(column), _y(rows) + GAP_Y, phases.get(step, ""), handler=True)
    edges: list[Edge] = []
    for left, right in zip(definition.positions, definition.positions[1:], strict=False):
        for source in left:
            for target in right:
                edges.append(_straight(places[source], places[target], "next"))
    for name, config in definition.steps.items():
        for dependency in config.depends_on:
            if dependency in places and name in places:
                edges.append(_straight(places[dependency], places[name], "depends"))
    for step, target, label in _jumps(definition):
        if step in places and target in places:
            edges.append(_arc(places[step], places[target], label, taken.get((step, target), 0)))
    # Reached steps the shape does not know (a redrive onto another spec): drawn at the end.
    extra = [step for step in phases if step not in places]
    for index, step in enumerate(extra):
        places[step] = Node(step, _x(len(definition.positions) + index), _y(0), phases[step])
    return _framed(places.values(), edges)


def layout_reached(steps: Iterable[tuple[str, str]]) -> Graph:
    """A code workflow's steps, (name, phase) in the order reached, as a chain."""
    nodes = [Node(step, _x(index), _y(0), phase) for index, (step, phase) in enumerate(steps)]
    edges = [_straight(a, b, "next") for a, b in itertools.pairwise(nodes)]
    return _framed(nodes, edges)


def _jumps(definition: WorkflowDefinition) -> Iterable[tuple[str, str, str]]:
    for branches in definition.branch.values():
        for branch in branches:
            if branch.goto is not None:
                yield branch.step, branch.goto, f"branch {branch.key}"
    for diverges in definition.diverge.values():
        for diverge in diverges:
            if diverge.goto is not None:
                yield diverge.step, diverge.goto, f"diverge {diverge.key}"


def _x(column: int) -> int:
    return MARGIN + column * (NODE_W + GAP_X)


def _y(row: int) -> int:
    return MARGIN + 30 + row * (NODE_H + GAP_Y)  # room above the first row for arcs


def _straight(a: Node, b: Node, kind: str) -> Edge:
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    if x2 <= x1:  # same column (dependsOn inside a group): from the bottom of one to the top of the next
        x1, y1, x2, y2 = a.x + NODE_W // 2, a.y + NODE_H, b.x + NODE_W // 2, b.y
        return Edge(a.step, b.step, f"M{x1},{y1} L{x2},{y2}", kind)
    middle = (x1 + x2) // 2
    return Edge(a.step, b.step, f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}", kind)


def _arc(a: Node, b: Node, label: str, taken: int) -> Edge:
    """A jump: an arc above the boxes (backward and forward alike), so it never crosses them."""
    x1, x2 = a.x + NODE_W // 2, b.x + NODE_W // 2
    if x1 == x2:
        x2 += 20
    lift = min(a.y, b.y) - 24
    return Edge(a.step, b.step, f"M{x1},{a.y} C{x1},{lift} {x2},{lift} {x2},{b.y}", "jump", label, taken)


def _framed(nodes: Iterable[Node], edges: list[Edge]) -> Graph:
    placed = tuple(nodes)
    width = max((n.x + NODE_W for n in placed), default=0) + MARGIN
    height = max((n.y + NODE_H for n in placed), default=0) + MARGIN
    return Graph(placed, tuple(edges), width, height)
