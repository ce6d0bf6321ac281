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
    "RunOptions": "gemflow.run",
    "run_workflow": "gemflow.run",
    "RunSummary": "gemflow.events",
    "Store": "gemflow.store",
    "default_cache_dir": "gemflow.store",
    "Workflow": "gemflow.workflow",
    "load_workflow": "gemflow.load",
}

if TYPE_CHECKING:
    from gemflow.errors import GemflowError, WorkflowError
    from gemflow.events import RunSummary
    from gemflow.load import load_workflow
    from gemflow.run import RunOptions, run_workflow
    from gemflow.store import Store, default_cache_dir
    from gemflow.workflow import Workflow


def __getattr__(name: str) -> Any:
    """Import lazily, so that ``gemflow --help`` does not load networkx, Pillow or the SDK."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'gemflow' has no attribute {name!r}")
