"""The step graph: which steps need which, in the order the file gives.

The run's hot path uses plain dicts (a no-op run of 10,000 steps must take seconds, and importing
networkx alone costs a quarter of a second). ``to_networkx`` gives the same graph as a networkx
``DiGraph`` — an edge from each input step to the step that uses it — for analysis, and names the
cycles when a workflow has any.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gemflow.workflow import Workflow

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True)
class StepGraph:
    index: dict[str, int]  # position in the file
    parents: dict[str, tuple[str, ...]]  # the steps each step takes as inputs (distinct)
    children: dict[str, tuple[str, ...]]


def build_graph(workflow: Workflow) -> StepGraph:
    index = {step_id: i for i, step_id in enumerate(workflow.steps)}
    parents = {
        step_id: tuple(dict.fromkeys(r.step for r in step.refs if r.step is not None))
        for step_id, step in workflow.steps.items()
    }
    children: dict[str, list[str]] = {step_id: [] for step_id in index}
    for step_id, ups in parents.items():
        for up in ups:
            children.setdefault(up, []).append(step_id)
    return StepGraph(index, parents, {k: tuple(v) for k, v in children.items()})


def to_networkx(workflow: Workflow) -> nx.DiGraph:
    import networkx as nx

    graph = nx.DiGraph()
    for index, (step_id, step) in enumerate(workflow.steps.items()):
        graph.add_node(step_id, index=index, kind=step.kind.name)
        for ref in step.refs:
            if ref.step is not None:
                graph.add_edge(ref.step, step_id)
    return graph


def find_cycles(workflow: Workflow) -> list[list[str]]:
    """Each cycle once, as the step ids around it, starting from the first in file order."""
    graph = build_graph(workflow)
    try:
        graphlib.TopologicalSorter(graph.parents).prepare()
    except graphlib.CycleError:
        pass
    else:
        return []
    import networkx as nx

    dag = to_networkx(workflow)
    cycles = []
    for component in nx.strongly_connected_components(dag):
        node = next(iter(component))
        if len(component) == 1 and not dag.has_edge(node, node):
            continue
        start = min(component, key=graph.index.__getitem__)
        cycle = nx.find_cycle(dag.subgraph(component), source=start)
        cycles.append([edge[0] for edge in cycle])
    return sorted(cycles, key=lambda c: graph.index[c[0]])


def select(graph: StepGraph, targets: Iterable[str]) -> set[str]:
    """The targets and everything they need. No targets: every step."""
    stack = list(targets)
    if not stack:
        return set(graph.index)
    selected: set[str] = set()
    while stack:
        step_id = stack.pop()
        if step_id not in selected:
            selected.add(step_id)
            stack.extend(graph.parents[step_id])
    return selected


def ordered(graph: StepGraph, steps: Iterable[str]) -> list[str]:
    """A topological order of ``steps`` (which must include what they need), ties broken by
    their order in the file."""
    chosen = set(steps)
    waiting = {s: sum(p in chosen for p in graph.parents[s]) for s in chosen}
    heap = [(graph.index[s], s) for s, count in waiting.items() if count == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, step_id = heapq.heappop(heap)
        order.append(step_id)
        for child in graph.children[step_id]:
            if child in chosen:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(heap, (graph.index[child], child))
    return order
