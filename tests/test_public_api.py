"""The package's public face is small and deliberate: a change to it is a decision, not an accident."""

from __future__ import annotations

import gemflow


def test_public_names_are_pinned() -> None:
    assert sorted(gemflow.__all__) == [
        "GemflowError",
        "RunOptions",
        "RunSummary",
        "Store",
        "Workflow",
        "WorkflowError",
        "default_cache_dir",
        "load_workflow",
        "run_workflow",
    ]


def test_every_public_name_resolves() -> None:
    for name in gemflow.__all__:
        assert getattr(gemflow, name) is not None


def test_a_dry_run_from_python(tmp_path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nsteps:\n  a: {kind: generate, prompt: x, model: gemini-3-pro-image}\n"
    )
    workflow = gemflow.load_workflow(tmp_path / "wf.yaml")
    with gemflow.Store(tmp_path / "cache") as store:
        summary = gemflow.run_workflow(workflow, store, gemflow.RunOptions(dry_run=True))
    assert summary.to_json()["totals"]["api_calls"] == 1
