"""``gemflow dag``: the step graph as text, Mermaid, DOT and JSON; matrix steps collapsed unless
``--instances``."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gemflow.cli import cli
from gemflow.views.dag import mermaid_ids

EXAMPLES = Path(__file__).parent.parent / "workflows"

SWEEP = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  pancake:
    kind: generate
    prompt: "A \\"quoted\\" pancake #1 <b>"
    matrix:
      model: [gemini-3.1-flash-image, gemini-3-pro-image]
      aspect_ratio: ["1:1", "16:9"]
    variants: 3
  wide:
    kind: composite
    images: ["pancake[aspect_ratio=16:9]"]
  end:
    kind: resize
    image: wide
    width: 100
"""


def dag(*args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["dag", *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "workflows")
    return tmp_path / "workflows" / "quickstart.yaml"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(SWEEP))
    return path


def test_text_lists_each_step_with_its_kind_output_and_inputs_in_order(quickstart: Path) -> None:
    out = dag(str(quickstart)).stdout.splitlines()
    assert out[0] == "quickstart.yaml: 5 steps, 1 input file"
    assert [line.split()[0] for line in out[1:]] == [
        "pancake",
        "pancake_fixed",
        "scene",
        "sheet",
        "thumb",
    ]
    scene = next(line for line in out if line.strip().startswith("scene"))
    assert re.search(r"scene +edit +out/scene\.png +<- photos/me\.jpg, pancake_fixed$", scene)


def test_a_matrix_step_is_one_node_by_default(sweep: Path) -> None:
    out = dag(str(sweep)).stdout
    assert "sweep.yaml: 3 steps (14 instances), no input files" in out
    assert re.search(r"pancake +generate ×12 +out/pancake/gemini-\*\.png", out)
    assert re.search(r"wide +composite +out/wide\.png +<- pancake \(6 of 12\)", out)


def test_instances_shows_every_instance(sweep: Path) -> None:
    out = dag(str(sweep), "--instances").stdout
    assert "pancake[model=gemini-3-pro-image,aspect_ratio=16:9,variant=2]" in out
    assert "out/pancake/gemini-3-pro-image_16x9_v2.png" in out
    assert re.search(r"wide +composite +out/wide\.png +<- pancake \(6 of 12\)", out)
    assert len(out.splitlines()) == 1 + 12 + 2


def test_mermaid_is_a_flowchart_with_safe_ids_and_quoted_labels(sweep: Path) -> None:
    for args in ([], ["--instances"]):
        out = dag(str(sweep), "--format", "mermaid", *args).stdout
        lines = out.splitlines()
        assert lines[0] == "flowchart LR"
        for line in lines[1:]:
            node = re.fullmatch(r'  (\w+)(\(\[|\[/|\[)"([^"]*)"(\]\)|/\]|\])', line)
            edge = re.fullmatch(r'  (\w+) -->(?:\|"[^"]*"\|)? (\w+)', line)
            assert node or edge, line
            ids = [node[1]] if node else [edge[1], edge[2]]  # type: ignore[index]
            assert all(re.fullmatch(r"[sf]_[A-Za-z0-9_]+", i) for i in ids), line
        assert "s_end[" in out  # 'end' would end a Mermaid flowchart: ids are prefixed
    out = dag(str(sweep), "--format", "mermaid").stdout
    assert 's_pancake(["pancake<br/>generate ×12"])' in out
    assert 's_pancake -->|"6 of 12"| s_wide' in out


def test_mermaid_escapes_what_would_break_a_label(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            steps:
              s:
                kind: generate
                model: gemini-3-pro-image
                prompt: ${matrix.look}
                matrix:
                  look: ['say "hi" #1 <b> `x`']
            """
        )
    )
    out = dag(str(path), "--format", "mermaid", "--instances").stdout
    assert "say #quot;hi#quot; #35;1 #lt;b#gt; #96;x#96;" in out


def test_mermaid_ids_are_distinct_when_names_differ_only_in_punctuation() -> None:
    ids = mermaid_ids(["a-b", "a_b", "a[x=1]", "file:a.b"])
    assert ids == {"a-b": "s_a_b", "a_b": "s_a_b_2", "a[x=1]": "s_a_x_1", "file:a.b": "f_a_b"}


def test_dot_quotes_ids_and_labels(quickstart: Path, sweep: Path) -> None:
    out = dag(str(quickstart), "--format", "dot").stdout
    assert out.startswith("digraph workflow {\n") and out.endswith("}\n")
    assert '"file:photos/me.jpg" [label="photos/me.jpg", shape=note];' in out
    assert '"pancake" [label="pancake\\ngenerate", style="rounded"];' in out
    assert '"file:photos/me.jpg" -> "scene";' in out
    collapsed = dag(str(sweep), "--format", "dot").stdout
    assert '"pancake" -> "wide" [label="6 of 12"];' in collapsed
    assert "peripheries=2" in collapsed


def test_json_has_nodes_and_edges(quickstart: Path, sweep: Path) -> None:
    doc = json.loads(dag(str(quickstart), "--format", "json").stdout)
    assert doc["workflow"] == "quickstart.yaml"
    nodes = {node["id"]: node for node in doc["nodes"]}
    assert nodes["scene"] == {
        "id": "scene",
        "kind": "edit",
        "step": "scene",
        "output": "out/scene.png",
        "api": True,
    }
    assert nodes["file:photos/me.jpg"]["kind"] == "file"
    assert {"from": "file:photos/me.jpg", "to": "scene"} in doc["edges"]
    expanded = json.loads(dag(str(sweep), "--format", "json", "--instances").stdout)
    first = expanded["nodes"][0]
    assert first["step"] == "pancake"
    assert first["values"] == {
        "model": "gemini-3.1-flash-image",
        "aspect_ratio": "1:1",
        "variant": "1",
    }
    collapsed = json.loads(dag(str(sweep), "--format", "json").stdout)
    assert len(collapsed["nodes"][0]["instances"]) == 12
    assert {"from": "pancake", "to": "wide", "instances": 6} in collapsed["edges"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot", "json"])
def test_every_example_renders_in_every_format(path: Path, fmt: str) -> None:
    assert dag(str(path), "--format", fmt).stdout.strip()


def test_an_invalid_workflow_prints_its_problems_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n"
        "  a: {kind: edit, prompt: x, images: [b]}\n"
        "  b: {kind: edit, prompt: x, images: [a]}\n"
    )
    result = dag(str(path), expect=2)
    assert "cycle: a -> b -> a" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_a_missing_workflow_exits_2(tmp_path: Path) -> None:
    result = dag(str(tmp_path / "nope.yaml"), expect=2)
    assert "no such workflow file" in result.stderr
