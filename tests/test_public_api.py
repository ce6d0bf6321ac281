"""The package's public face is small and deliberate: a change to it is a decision, not an accident."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import gemflow

PUBLIC = sorted(
    [
        "Connection",
        "Result",
        "StepResult",
        "arun",
        "load",
        "plan",
        "run",
        "GemflowError",
        "ResultStore",
        "RunOptions",
        "RunSummary",
        "Session",
        "Store",
        "Workflow",
        "WorkflowError",
        "default_cache_dir",
        "load_workflow",
        "open_session",
        "open_store",
        "run_workflow",
    ]
)


def test_public_names_are_pinned() -> None:
    assert sorted(gemflow.__all__) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_is_the_class_or_function_its_module_defines(name: str) -> None:
    value = getattr(gemflow, name)
    assert inspect.isclass(value) or inspect.isfunction(value), name
    home = importlib.import_module(value.__module__)
    assert getattr(home, name) is value
    assert value.__module__.startswith("gemflow."), value.__module__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'run_everything'"):
        gemflow.run_everything  # noqa: B018


def test_importing_gemflow_loads_none_of_the_engine() -> None:
    code = "import sys, gemflow; print(sorted(m for m in sys.modules if m.startswith('gemflow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['gemflow']"


def test_a_dry_run_from_python(tmp_path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nsteps:\n  a: {kind: generate, prompt: x, model: gemini-3-pro-image}\n"
    )
    workflow = gemflow.load_workflow(tmp_path / "wf.yaml")
    with gemflow.Store(tmp_path / "cache") as store:
        summary = gemflow.run_workflow(workflow, store, gemflow.RunOptions(dry_run=True))
    assert summary.to_json()["totals"]["api_calls"] == 1
