"""gemflow from Python: run, plan, load; results to look at; inside a running event loop and in a
real Jupyter kernel."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import FAKE_KEY, PHOTOS

import gemflow
from gemflow.emulator import Emulator

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  pancake: {kind: generate, prompt: A skull pancake.}
  fixed: {kind: edit, images: [pancake], prompt: Add a strawberry.}
  thumb: {kind: resize, image: fixed, width: 64}
"""


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    return path


def run(path: Path, emulator: Emulator, **options: object) -> gemflow.Result:
    return gemflow.run(
        path, api_key=FAKE_KEY, base_url=emulator.url, cache=path.parent / "cache", **options
    )


def test_a_run_returns_each_step_with_its_picture(workflow: Path, emulator: Emulator) -> None:
    result = run(workflow, emulator)
    assert result.ok
    assert set(result) == {"pancake", "fixed", "thumb"}
    assert result.calls == 2 == len(emulator.api_calls())
    assert result.cost > 0
    assert result["thumb"].image.size[0] == 64
    assert result["pancake"].image.mode in ("RGB", "RGBA", "P")
    assert result.outputs["fixed"] == workflow.parent / "out" / "fixed.png"
    assert result["fixed"].status == "run"
    again = run(workflow, emulator)
    assert (again.calls, again["fixed"].status) == (0, "cached")


def test_a_result_shows_as_a_grid_of_thumbnails_in_a_notebook(
    workflow: Path, emulator: Emulator
) -> None:
    page = run(workflow, emulator)._repr_html_()
    assert page.count("<img ") == 3
    assert page.count("data:image/png;base64,") == 3
    for name in ("pancake", "fixed", "thumb"):
        assert f">{name}</figcaption>" in page


def test_a_plan_sends_nothing_and_needs_no_key(workflow: Path) -> None:
    result = gemflow.plan(workflow, cache=workflow.parent / "cache")
    assert {r.status for r in result.values()} == {"run"}
    assert result.calls == 2
    assert result["fixed"].reason == "input step pancake will run"


def test_load_gives_the_networkx_graph(workflow: Path) -> None:
    graph = gemflow.load(workflow).graph
    assert sorted(graph.edges) == [("fixed", "thumb"), ("pancake", "fixed")]


def test_the_built_in_emulator_needs_nothing(workflow: Path) -> None:
    result = gemflow.run(workflow, emulator=True, cache="memory:", targets=["pancake"])
    assert result.ok and result.calls == 1
    assert result["pancake"].image.size[0] > 0


def test_run_works_inside_a_running_event_loop(workflow: Path, emulator: Emulator) -> None:
    async def in_a_notebook() -> tuple[int, int]:
        plain = run(workflow, emulator)  # blocking, as a notebook cell would call it
        awaited = await gemflow.arun(
            workflow, api_key=FAKE_KEY, base_url=emulator.url, cache=workflow.parent / "cache"
        )
        return plain.calls, awaited.calls

    assert asyncio.run(in_a_notebook()) == (2, 0)


def test_matrix_instances_are_found_by_a_selector(tmp_path: Path, emulator: Emulator) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n  a: {kind: generate, model: gemini-3-pro-image, prompt: x, "
        "variants: 2}\n"
    )
    result = run(path, emulator)
    assert result["a[variant=2]"].id == "a[variant=2]"
    with pytest.raises(KeyError):
        result["a"]  # two instances: name one


def test_in_a_real_jupyter_kernel(tmp_path: Path, emulator: Emulator) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    shutil.copy(PHOTOS / "me.jpg", tmp_path / "me.jpg")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    cells = [
        "import gemflow",
        textwrap.dedent(f"""\
            result = gemflow.run("wf.yaml", api_key="k", base_url="{emulator.url}", cache="cache")
            print(result.calls, result["thumb"].image.size)"""),
        "result",
        textwrap.dedent(f"""\
            again = await gemflow.arun("wf.yaml", api_key="k", base_url="{emulator.url}",
                                       cache="cache")
            print(again.calls)"""),
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert outputs[1][0]["text"].startswith("2 (64, ")
    shown = outputs[2][0]["data"]
    assert "text/html" in shown and shown["text/html"].count("<img ") == 3
    assert outputs[3][0]["text"].strip() == "0"
