"""The lineage view: the workflow's graph as inline SVG, one node per step as written (a matrix
step is one node) and per input file, in columns by depth; each step's node links to its card.

The layout is the simple layered one: a node's column is one more than its deepest input's, and
within a column nodes are ordered by where their inputs sit (then by file order), which keeps most
edges short and uncrossed for the graphs workflows have. No graphviz.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

NODE_W = 200
NODE_H = 30
COL_GAP = 64
ROW_GAP = 10
PAD = 4
LABEL_CHARS = 26


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    href: str | None  # "#anchor" of its card; None for an input file
    css: str  # its class: the status of its step(s), or "file"
    title: str  # the tooltip: the full name and what it is


def svg(nodes: Sequence[Node], edges: Sequence[tuple[str, str]]) -> str:
    """The graph as an ``<svg>`` element; ``edges`` go from an input's node to its user's."""
    if not nodes:
        return ""
    columns = _columns(nodes, edges)
    place: dict[str, tuple[int, int]] = {}
    for c, column in enumerate(columns):
        for r, node in enumerate(column):
            place[node.id] = (PAD + c * (NODE_W + COL_GAP), PAD + r * (NODE_H + ROW_GAP))
    width = PAD * 2 + len(columns) * NODE_W + (len(columns) - 1) * COL_GAP
    height = PAD * 2 + max(len(c) for c in columns) * (NODE_H + ROW_GAP) - ROW_GAP
    parts = [
        f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="The steps and what each one uses">'
    ]
    for source, target in dict.fromkeys(edges):
        (x1, y1), (x2, y2) = place[source], place[target]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        bend = COL_GAP // 2
        parts.append(
            f'<path class="edge" d="M{x1} {y1} C{x1 + bend} {y1} {x2 - bend} {y2} {x2} {y2}"/>'
        )
    for column in columns:
        for node in column:
            parts.append(_node(node, *place[node.id]))
    parts.append("</svg>")
    return "\n".join(parts)


def _node(node: Node, x: int, y: int) -> str:
    label = node.label if len(node.label) <= LABEL_CHARS else node.label[: LABEL_CHARS - 1] + "…"
    body = (
        f"<title>{html.escape(node.title)}</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
        f'<text x="{x + 10}" y="{y + NODE_H // 2 + 5}">{html.escape(label)}</text>'
    )
    css = html.escape(node.css, quote=True)
    if node.href is None:
        return f'<g class="node {css}">{body}</g>'
    href = html.escape(node.href, quote=True)
    return f'<a class="node {css}" href="{href}">{body}</a>'


def _columns(nodes: Sequence[Node], edges: Sequence[tuple[str, str]]) -> list[list[Node]]:
    order = {node.id: n for n, node in enumerate(nodes)}
    inputs: dict[str, list[str]] = {node.id: [] for node in nodes}
    for source, target in edges:
        inputs[target].append(source)
    depth = _depths(inputs)
    columns: list[list[Node]] = [[] for _ in range(max(depth.values()) + 1)]
    row: dict[str, float] = {}
    for node in nodes:
        columns[depth[node.id]].append(node)
    for column in columns:
        column.sort(key=lambda n: (_mean(row, inputs[n.id]), order[n.id]))
        for r, node in enumerate(column):
            row[node.id] = r
    return columns


def _depths(inputs: dict[str, list[str]]) -> dict[str, int]:
    """Each node's column: 0 without inputs, else one more than its deepest input's (Kahn's
    order, since a step may use a step written after it)."""
    users: dict[str, list[str]] = {node: [] for node in inputs}
    waiting = {node: len(set(found)) for node, found in inputs.items()}
    for node, found in inputs.items():
        for source in set(found):
            users[source].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    depth = dict.fromkeys(ready, 0)
    while ready:
        node = ready.pop()
        for user in users[node]:
            depth[user] = max(depth.get(user, 0), depth[node] + 1)
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    return depth


def _mean(row: dict[str, float], ids: list[str]) -> float:
    placed = [row[i] for i in ids if i in row]
    return sum(placed) / len(placed) if placed else -1.0
