"""gemflow: declarative, content-addressed image pipelines for Google's Gemini image models.

The library face of gemflow is small: load a workflow, open a store, run it.

    from gemflow import load_workflow, Store, RunOptions, run_workflow
    wf = load_workflow("workflows/quickstart.yaml")
    with Store(default_cache_dir(wf.path)) as store:
        summary = run_workflow(wf, store, RunOptions(dry_run=True))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
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

_WHERE = {
    "GemflowError": "gemflow.errors",
    "WorkflowError": "gemflow.errors",
    "RunOptions": "gemflow.engine.runner",
    "run_workflow": "gemflow.engine.runner",
    "RunSummary": "gemflow.engine.events",
    "Store": "gemflow.cache.local",
    "default_cache_dir": "gemflow.cache.local",
    "Workflow": "gemflow.workflow",
    "load_workflow": "gemflow.workflow.load",
}

if TYPE_CHECKING:
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.engine.events import RunSummary
    from gemflow.engine.runner import RunOptions, run_workflow
    from gemflow.errors import GemflowError, WorkflowError
    from gemflow.workflow import Workflow
    from gemflow.workflow.load import load_workflow


def __getattr__(name: str) -> Any:
    """Import lazily, so that ``gemflow --help`` does not load networkx, Pillow or the SDK."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'gemflow' has no attribute {name!r}")
