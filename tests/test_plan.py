"""The compiled plan (gemflow.workflow.plan): a workflow loaded once is read back on the next run,
and never when anything it was made from has changed."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project

from gemflow.errors import WorkflowError
from gemflow.workflow import plan as plan_module
from gemflow.workflow.load import _Loader
from gemflow.workflow.plan import load_planned

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
vars: {who: a paladin}
steps:
  hero: {kind: generate, prompt_file: prompts/hero.md}
  scene: {kind: edit, images: [hero, photos/me.png], prompt: "Put ${who} in the scene."}
  small: {kind: resize, image: scene, width: 64, output: out/small.png}
"""


class Loads:
    """Counts the loads that parsed the file (the plan was not used)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = _Loader.load

        def counted(loader: _Loader) -> object:
            self.count += 1
            return original(loader)

        monkeypatch.setattr(_Loader, "load", counted)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    return Loads(monkeypatch)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "project"
    (root / "prompts").mkdir(parents=True)
    (root / "photos").mkdir()
    (root / "prompts" / "hero.md").write_text("A paladin, age 30.\n")
    (root / "photos" / "me.png").write_bytes(b"not read by the loader")
    (root / "wf.yaml").write_text(WORKFLOW)
    monkeypatch.chdir(root)
    yield root


def load(folder: Path) -> object:
    return load_planned(folder / "wf.yaml", allow_outside=False, folder=folder / "cache" / "plans")


def test_the_second_load_reads_the_plan_and_gives_the_same_workflow(
    folder: Path, loads: Loads
) -> None:
    first = load(folder)
    second = load(folder)
    assert loads.count == 1
    assert second == first
    assert [s.kind for s in second.steps.values()] == [s.kind for s in first.steps.values()]
    assert second.steps["small"].kind is first.steps["small"].kind  # the registered kind


def same_stat(path: Path, text: str) -> None:
    """Rewrite ``path`` keeping its size and mtime (an editor that restores times, say)."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize(
    "change",
    [
        "workflow text",
        "a var",
        "prompt file",
        "prompt file, same size and mtime",
        "gemflow",
        "current folder",
        "allow outside",
    ],
)
def test_a_change_to_what_the_plan_was_made_from_is_seen(
    folder: Path, loads: Loads, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    first = load(folder)
    allow_outside = False
    if change == "workflow text":
        (folder / "wf.yaml").write_text(WORKFLOW.replace("width: 64", "width: 65"))
    elif change == "a var":
        (folder / "wf.yaml").write_text(WORKFLOW.replace("a paladin}", "a knight}"))
    elif change == "prompt file":
        (folder / "prompts" / "hero.md").write_text("A knight, age 30.\n")
    elif change == "prompt file, same size and mtime":
        same_stat(folder / "prompts" / "hero.md", "A paladin, age 31.\n")
    elif change == "gemflow":
        monkeypatch.setattr(plan_module, "code_signature", lambda: "another gemflow")
    elif change == "current folder":
        monkeypatch.chdir(folder / "prompts")
    elif change == "allow outside":
        allow_outside = True
    second = load_planned(
        folder / "wf.yaml", folder=folder / "cache" / "plans", allow_outside=allow_outside
    )
    assert loads.count == 2
    if change in ("workflow text", "a var") or change.startswith("prompt file"):
        assert second != first


def test_an_input_file_that_went_away_is_reported_not_planned_around(
    folder: Path, loads: Loads
) -> None:
    load(folder)
    (folder / "photos" / "me.png").unlink()
    with pytest.raises(WorkflowError, match="neither a step nor a file"):
        load(folder)


def test_an_output_folder_turned_into_a_link_out_of_the_project_is_refused(
    folder: Path, tmp_path: Path, loads: Loads
) -> None:
    load(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "out").symlink_to(elsewhere)
    with pytest.raises(WorkflowError, match="leaves the workflow's folder"):
        load(folder)


def test_an_output_file_turned_into_a_link_out_of_the_project_is_refused(
    folder: Path, tmp_path: Path, loads: Loads
) -> None:
    (folder / "out").mkdir()
    load(folder)
    (folder / "out" / "small.png").symlink_to(tmp_path / "stolen.png")
    with pytest.raises(WorkflowError, match="leaves the workflow's folder"):
        load(folder)


def test_a_sibling_yml_that_appears_is_reported(folder: Path, loads: Loads) -> None:
    load(folder)
    (folder / "wf.yml").write_text(WORKFLOW)
    with pytest.raises(WorkflowError, match=r"would share wf\.lock"):
        load(folder)


def test_a_file_named_like_a_step_that_appears_is_reported(folder: Path, loads: Loads) -> None:
    load(folder)
    (folder / "hero").write_text("")
    with pytest.raises(WorkflowError, match="is both a step id and a file"):
        load(folder)


def test_a_damaged_or_planted_plan_is_not_used_and_runs_nothing(
    folder: Path, loads: Loads, tmp_path: Path
) -> None:
    load(folder)
    (plan_file,) = (folder / "cache" / "plans").iterdir()
    plan_file.write_bytes(plan_file.read_bytes()[:100])
    load(folder)
    assert loads.count == 2

    witness = tmp_path / "ran"

    class Planted:
        def __reduce__(self) -> tuple[object, ...]:
            return os.system, (f"touch {witness}",)

    plan_file.write_bytes(pickle.dumps({"format": 1, "key": "x", "steps": Planted()}))
    load(folder)
    assert loads.count == 3
    assert not witness.exists()


def test_no_plan_is_kept_for_a_workflow_with_problems(folder: Path) -> None:
    (folder / "wf.yaml").write_text(WORKFLOW.replace("kind: resize", "kind: rezise"))
    with pytest.raises(WorkflowError):
        load(folder)
    assert not (folder / "cache" / "plans").exists()


def test_a_cache_that_cannot_be_written_still_loads(folder: Path) -> None:
    (folder / "cache").write_text("a file where the cache folder would be")
    assert load(folder).steps.keys() == {"hero", "scene", "small"}


def test_runs_use_the_plan_and_pay_for_an_edited_prompt_file_once(
    project: Project, loads: Loads
) -> None:
    (project.root / "prompts").mkdir()
    rules = project.root / "prompts" / "hero.md"
    rules.write_text("A paladin, age 30.\n")
    project.write(
        """\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          hero: {kind: generate, prompt_file: prompts/hero.md}
        """
    )
    project.run()
    project.run()
    assert (loads.count, len(project.calls())) == (1, 1)
    same_stat(rules, "A paladin, age 31.\n")
    project.run()
    assert (loads.count, len(project.calls())) == (2, 2)
    same_stat(rules, "A paladin, age 30.\n")
    project.run()
    assert (loads.count, len(project.calls())) == (3, 2)  # back to the first: from the cache


def test_a_no_op_run_imports_neither_the_loader_nor_heavy_libraries(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """What a cached run needs is the plan, the lock file and the store: not PyYAML and the
    loader's checks, the SDK, Pillow, networkx, jsonschema or rich (off a terminal)."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\ndefaults: {model: gemini-3.1-flash-image}\nsteps:\n"
        "  a: {kind: generate, prompt: A lighthouse.}\n"
        "  b: {kind: resize, image: a, width: 64, output: out/b.webp}\n"
    )
    run = [sys.executable, "-m", "gemflow", "run", "wf.yaml", "--emulator", "-q"]
    subprocess.run(run, cwd=tmp_path, env=isolated_env, check=True, capture_output=True)
    heavy = ("yaml", "gemflow.workflow.load", "google", "PIL", "networkx", "jsonschema", "rich")
    code = (
        "import sys\nfrom gemflow.cli import cli\n"
        "try:\n    cli.main(sys.argv[1:], standalone_mode=False)\nfinally:\n"
        f"    print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *run[3:]],
        cwd=tmp_path,
        env=isolated_env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
