"""The step graph as people read it: a text table, Mermaid, Graphviz DOT or JSON.

The graph is ``engine.graph.to_networkx`` (an edge from each input to the step that uses it) with
the input files added as nodes (``file:<path>``, relative to the workflow's folder). By default a
matrix step is one node, as it is written (``pancake``, 18 instances); ``instances=True`` shows
each instance. An edge from a matrix step to a step that takes only some of its instances says how
many (``6 of 18``).

Node ids in Mermaid are made safe (``s_`` or ``f_`` and the name with every other character as
``_``, numbered when two would clash); the names themselves are quoted labels. DOT ids are quoted
strings, so they are the names.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemflow.engine.graph import to_networkx
from gemflow.workflow import Workflow

if TYPE_CHECKING:
    import networkx as nx

FILE = "file:"  # a step id never holds ':' and an instance name starts with its step id
FORMATS = ("text", "mermaid", "dot", "json")


@dataclass(frozen=True)
class Node:
    id: str  # the step id, the instance name, or file:<path>
    kind: str  # the step's kind, or "file"
    step: str | None  # the step id as written; None for a file
    output: str | None  # relative to the workflow's folder; a pattern (*) for a matrix step
    api: bool = False
    instances: tuple[str, ...] = ()  # a matrix step shown as one node: its instances
    values: tuple[tuple[str, str], ...] = ()  # an instance's matrix values
    path: str | None = None  # a file's path, relative to the workflow's folder

    @property
    def name(self) -> str:
        return self.path if self.path is not None else self.id


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    takes: int | None = None  # of a matrix step's instances, when the target takes only some


@dataclass(frozen=True)
class Dag:
    workflow: str  # the file's name
    nodes: tuple[Node, ...]  # every input before the steps that use it; file order otherwise
    edges: tuple[Edge, ...]
    instances: bool  # matrix steps shown instance by instance
    steps: int  # as written
    instance_count: int

    def node(self, node_id: str) -> Node:
        return self._by_id[node_id]

    def inputs(self, node_id: str) -> list[Edge]:
        return self._inputs.get(node_id, [])

    def size(self, step: str) -> int:
        """How many nodes stand for step ``step`` as written (its instances, when shown)."""
        return self._sizes.get(step, 0)

    @functools.cached_property
    def _by_id(self) -> dict[str, Node]:
        return {node.id: node for node in self.nodes}

    @functools.cached_property
    def _inputs(self) -> dict[str, list[Edge]]:
        found: dict[str, list[Edge]] = {}
        for edge in self.edges:
            found.setdefault(edge.target, []).append(edge)
        return found

    @functools.cached_property
    def _sizes(self) -> dict[str, int]:
        return dict(Counter(node.step for node in self.nodes if node.step is not None))


def build_dag(workflow: Workflow, *, instances: bool = False) -> Dag:
    """The graph of ``workflow``, with its input files; matrix steps collapsed unless
    ``instances``."""
    import networkx as nx

    graph = to_networkx(workflow)
    for step_id, step in workflow.steps.items():
        for ref in step.refs:
            if ref.path is not None:
                node = FILE + _relative(ref.path, workflow.root)
                graph.add_node(node, kind="file")
                graph.add_edge(node, step_id)
    if not instances:
        graph = _collapse(graph, workflow)
    rank = {node: _rank(graph, node) for node in graph}
    order = list(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))
    nodes = {node: _node(graph, node, workflow) for node in order}
    written = _written_order(workflow, grouped=not instances)
    edges = []
    for source, target in sorted(graph.edges, key=lambda e: (rank[e[1]], written[e])):
        edges.append(Edge(source, target, _takes(graph, source, target, nodes[source])))
    return Dag(
        workflow=workflow.display_name,
        nodes=tuple(nodes.values()),
        edges=tuple(edges),
        instances=instances,
        steps=len(workflow.groups),
        instance_count=len(workflow.steps),
    )


def render(dag: Dag, fmt: str) -> str:
    """``dag`` in one of ``FORMATS``, ending with a newline."""
    renderers: dict[str, Callable[[Dag], str]] = {
        "text": render_text,
        "mermaid": render_mermaid,
        "dot": render_dot,
        "json": lambda d: json.dumps(to_json(d), indent=2, ensure_ascii=False) + "\n",
    }
    return renderers[fmt](dag)


# -- building ---------------------------------------------------------------------------------


def _collapse(graph: nx.DiGraph, workflow: Workflow) -> nx.DiGraph:
    """One node per step as written; an edge remembers which source instances it stands for."""
    import networkx as nx

    group_of = {name: step.written_id for name, step in workflow.steps.items()}
    collapsed = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        group = group_of.get(node, node)
        if group not in collapsed:
            collapsed.add_node(group, **data, members=[])
        collapsed.nodes[group]["members"].append(node)
    for source, target in graph.edges:
        pair = group_of.get(source, source), group_of.get(target, target)
        if not collapsed.has_edge(*pair):
            collapsed.add_edge(*pair, sources=set())
        collapsed.edges[pair]["sources"].add(source)
    return collapsed


def _written_order(workflow: Workflow, *, grouped: bool) -> dict[tuple[str, str], int]:
    """(input, step) -> where the step's inputs name that input first: inputs in written order."""
    order: dict[tuple[str, str], int] = {}
    for name, step in workflow.steps.items():
        target = step.written_id if grouped else name
        for position, ref in enumerate(step.refs):
            if ref.path is not None:
                source = FILE + _relative(ref.path, workflow.root)
            else:
                assert ref.step is not None  # a reference is a step or a file
                source = workflow.steps[ref.step].written_id if grouped else ref.step
            order.setdefault((source, target), position)
    return order


def _rank(graph: nx.DiGraph, node: str) -> float:
    """A step's place in the file; a file just before the first step that reads it."""
    data = graph.nodes[node]
    if "index" in data:
        return float(data["index"])
    return min(graph.nodes[s].get("index", 0) for s in graph.successors(node)) - 0.5


def _node(graph: nx.DiGraph, node: str, workflow: Workflow) -> Node:
    if node.startswith(FILE):
        return Node(node, "file", None, None, path=node.removeprefix(FILE))
    members = graph.nodes[node].get("members", [node])
    steps = [workflow.steps[name] for name in members]
    first = steps[0]
    matrix = len(steps) > 1 or bool(first.values)
    return Node(
        id=node,
        kind=first.kind.name,
        step=first.written_id,
        output=_pattern([step.output_rel for step in steps]),
        api=first.uses_api,
        instances=tuple(members) if matrix and "members" in graph.nodes[node] else (),
        values=first.values if "members" not in graph.nodes[node] else (),
    )


def _takes(graph: nx.DiGraph, source: str, target: str, node: Node) -> int | None:
    sources = graph.edges[source, target].get("sources")
    if sources is None or not node.instances or len(sources) == len(node.instances):
        return None
    return len(sources)


def _pattern(paths: Sequence[str]) -> str:
    """One path, or a glob that matches all of them: ``out/pancake/*.png``."""
    if len(set(paths)) == 1:
        return paths[0]
    prefix = _common_start(paths)
    prefix = prefix[: max(prefix.rfind(c) for c in "/_-. ") + 1]  # whole words only
    rests = [path[len(prefix) :] for path in paths]
    suffix = _common_start([rest[::-1] for rest in rests])[::-1]
    cut = [i for i in (suffix.find(c) for c in "/_-. ") if i >= 0]
    suffix = suffix[min(cut) :] if cut else ""
    return f"{prefix}*{suffix}"


def _common_start(texts: Sequence[str]) -> str:
    """The longest start all ``texts`` share, character by character (not by path part)."""
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


# -- text -------------------------------------------------------------------------------------


def render_text(dag: Dag) -> str:
    """One line per step, inputs before the steps that use them: id, kind, output, inputs."""
    files = sum(node.kind == "file" for node in dag.nodes)
    header = f"{dag.workflow}: {_count(dag.steps, 'step')}"
    if dag.instance_count != dag.steps:
        header += f" ({_count(dag.instance_count, 'instance')})"
    header += f", {_count(files, 'input file')}" if files else ", no input files"
    rows = []
    for node in dag.nodes:
        if node.kind == "file":
            continue
        kind = node.kind + (f" ×{len(node.instances)}" if node.instances else "")
        inputs = _input_names(dag, node)
        rows.append((node.id, kind, node.output or "", f"<- {inputs}" if inputs else ""))
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    lines = [header]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append(("  " + "  ".join([*cells, row[3]])).rstrip())
    return "\n".join(lines) + "\n"


def _input_names(dag: Dag, node: Node) -> str:
    """The inputs of ``node``, a run of one matrix step's instances written as that step."""
    names: list[str] = []
    seen: dict[str, list[str]] = {}  # step id -> its instances among the inputs
    for edge in dag.inputs(node.id):
        source = dag.node(edge.source)
        if edge.takes is not None:
            names.append(f"{source.name} ({edge.takes} of {len(source.instances)})")
        elif source.values and source.step is not None:
            if source.step not in seen:
                names.append(source.step)
                seen[source.step] = []
            seen[source.step].append(source.id)
        else:
            names.append(source.name)
    for step, members in seen.items():
        total = dag.size(step)
        at = names.index(step)
        if len(members) == 1:
            names[at] = members[0]
        elif len(members) == total:
            names[at] = f"{step} (all {total})"
        else:
            names[at] = f"{step} ({len(members)} of {total})"
    return ", ".join(names)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'s' * (n != 1)}"


# -- Mermaid ----------------------------------------------------------------------------------

_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "`": "#96;"}


def render_mermaid(dag: Dag) -> str:
    """A ``flowchart LR`` for a GitHub README: API steps rounded, local steps square, input files
    slanted."""
    ids = mermaid_ids(node.id for node in dag.nodes)
    lines = ["flowchart LR"]
    for node in dag.nodes:
        label = _mermaid_text(node.name)
        if node.kind == "file":
            lines.append(f'  {ids[node.id]}[/"{label}"/]')
            continue
        label += "<br/>" + _mermaid_text(_kind_label(node))
        opening, closing = ("([", "])") if node.api else ("[", "]")
        lines.append(f'  {ids[node.id]}{opening}"{label}"{closing}')
    for edge in dag.edges:
        link = "-->" if edge.takes is None else f'-->|"{_takes_label(dag, edge)}"|'
        lines.append(f"  {ids[edge.source]} {link} {ids[edge.target]}")
    return "\n".join(lines) + "\n"


def mermaid_ids(names: Iterable[str]) -> dict[str, str]:
    """A Mermaid-safe id for each name: letters, digits and ``_``, never a keyword (``end``),
    distinct."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        prefix = "f_" if name.startswith(FILE) else "s_"
        base = prefix + re.sub(r"[^A-Za-z0-9]+", "_", name.removeprefix(FILE)).strip("_")
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        ids[name] = candidate
    return ids


def _mermaid_text(text: str) -> str:
    text = " ".join(text.split())
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


# -- DOT --------------------------------------------------------------------------------------


def render_dot(dag: Dag) -> str:
    """Graphviz text (``dot -Tsvg``): API steps rounded, a matrix step with a double border,
    input files as notes."""
    lines = [
        "digraph workflow {",
        f'  graph [rankdir=LR, label="{_dot_text(dag.workflow)}", labelloc=t, fontname="Helvetica"];',
        '  node [shape=box, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in dag.nodes:
        if node.kind == "file":
            attributes = f'label="{_dot_text(node.name)}", shape=note'
        else:
            label = f"{_dot_text(node.name)}\\n{_dot_text(_kind_label(node))}"
            attributes = f'label="{label}"'
            if node.api:
                attributes += ', style="rounded"'
            if node.instances:
                attributes += ", peripheries=2"
        lines.append(f'  "{_dot_text(node.id)}" [{attributes}];')
    for edge in dag.edges:
        label = "" if edge.takes is None else f' [label="{_takes_label(dag, edge)}"]'
        lines.append(f'  "{_dot_text(edge.source)}" -> "{_dot_text(edge.target)}"{label};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    """Text inside a DOT double-quoted string."""
    return " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"')


# -- JSON -------------------------------------------------------------------------------------


def to_json(dag: Dag) -> dict[str, Any]:
    """``{workflow, instances, nodes: [{id, kind, step, output, api, ...}], edges: [{from, to}]}``."""
    nodes = []
    for node in dag.nodes:
        item: dict[str, Any] = {
            "id": node.id,
            "kind": node.kind,
            "step": node.step,
            "output": node.output,
        }
        if node.kind == "file":
            item["path"] = node.path
        else:
            item["api"] = node.api
        if node.instances:
            item["instances"] = list(node.instances)
        if node.values:
            item["values"] = dict(node.values)
        nodes.append(item)
    edges = []
    for edge in dag.edges:
        link: dict[str, Any] = {"from": edge.source, "to": edge.target}
        if edge.takes is not None:
            link["instances"] = edge.takes
        edges.append(link)
    return {"workflow": dag.workflow, "instances": dag.instances, "nodes": nodes, "edges": edges}


def _kind_label(node: Node) -> str:
    return node.kind + (f" ×{len(node.instances)}" if node.instances else "")


def _takes_label(dag: Dag, edge: Edge) -> str:
    return f"{edge.takes} of {len(dag.node(edge.source).instances)}"
