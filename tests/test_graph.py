"""The step graph: selection of targets, order, cycles, and the networkx view."""

from __future__ import annotations

from pathlib import Path

from gemflow.engine.graph import build_graph, find_cycles, ordered, select, to_networkx
from gemflow.workflow import Workflow
from gemflow.workflow.load import load_workflow

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  late: {kind: edit, prompt: x, images: [b, a]}
  a: {kind: generate, prompt: x}
  b: {kind: generate, prompt: x}
  c: {kind: edit, prompt: x, images: [a, a]}
  alone: {kind: generate, prompt: x}
"""


def workflow(tmp_path: Path) -> Workflow:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    return load_workflow(tmp_path / "wf.yaml")


def test_order_puts_inputs_first_and_otherwise_keeps_the_file_order(tmp_path: Path) -> None:
    graph = build_graph(workflow(tmp_path))
    assert ordered(graph, graph.index) == ["a", "b", "late", "c", "alone"]


def test_a_target_selects_itself_and_what_it_needs(tmp_path: Path) -> None:
    graph = build_graph(workflow(tmp_path))
    assert select(graph, ["late"]) == {"late", "a", "b"}
    assert select(graph, []) == set(graph.index)


def test_an_input_used_twice_is_one_edge(tmp_path: Path) -> None:
    assert build_graph(workflow(tmp_path)).parents["c"] == ("a",)


def test_networkx_view_has_an_edge_from_each_input_to_its_user(tmp_path: Path) -> None:
    graph = to_networkx(workflow(tmp_path))
    assert sorted(graph.edges) == [("a", "c"), ("a", "late"), ("b", "late")]
    assert graph.nodes["late"]["kind"] == "edit"


def test_an_acyclic_workflow_has_no_cycles(tmp_path: Path) -> None:
    assert find_cycles(workflow(tmp_path)) == []
