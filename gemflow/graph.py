"""The step graph: a networkx DiGraph with an edge from each input step to the step that uses it."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from gemflow.workflow import Workflow


def build_graph(workflow: Workflow) -> nx.DiGraph:
    graph = nx.DiGraph()
    for index, (step_id, step) in enumerate(workflow.steps.items()):
        graph.add_node(step_id, index=index)
        for ref in step.refs:
            if ref.step is not None:
                graph.add_edge(ref.step, step_id)
    return graph


def find_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Each cycle once, as the list of step ids around it, starting from the first in file order."""
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1 and not graph.has_edge(next(iter(component)), next(iter(component))):
            continue
        start = min(component, key=lambda n: graph.nodes[n]["index"])
        cycle = nx.find_cycle(graph.subgraph(component), source=start)
        cycles.append([edge[0] for edge in cycle])
    return sorted(cycles, key=lambda c: graph.nodes[c[0]]["index"])


def select(graph: nx.DiGraph, targets: Iterable[str]) -> set[str]:
    """The targets and everything they need. No targets: every step."""
    targets = list(targets)
    if not targets:
        return set(graph.nodes)
    selected = set(targets)
    for target in targets:
        selected |= nx.ancestors(graph, target)
    return selected


def ordered(graph: nx.DiGraph, steps: Iterable[str]) -> list[str]:
    """A topological order of ``steps``, ties broken by their order in the file."""
    sub = graph.subgraph(steps)
    return list(nx.lexicographical_topological_sort(sub, key=lambda n: graph.nodes[n]["index"]))
