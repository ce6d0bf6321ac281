"""gemflow: declarative, content-addressed image pipelines for Google's Gemini image models.

    import gemflow
    result = gemflow.run("workflows/quickstart.yaml", emulator=True)   # or api_key=..., base_url=...
    result["pancake"].image                       # a PIL image; result.outputs, .calls, .cost
    plan = gemflow.plan("workflows/quickstart.yaml")   # the dry run, as data
    graph = gemflow.load("workflows/quickstart.yaml").graph   # a networkx.DiGraph

Lower down: ``open_session`` (a store and a connection to the API) and ``run_workflow``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Connection",
    "GemflowError",
    "Result",
    "ResultStore",
    "RunOptions",
    "RunSummary",
    "Session",
    "StepResult",
    "Store",
    "Workflow",
    "WorkflowError",
    "arun",
    "default_cache_dir",
    "load",
    "load_workflow",
    "open_session",
    "open_store",
    "plan",
    "run",
    "run_workflow",
]

_WHERE = {
    "Result": "gemflow.api",
    "StepResult": "gemflow.api",
    "arun": "gemflow.api",
    "load": "gemflow.api",
    "plan": "gemflow.api",
    "run": "gemflow.api",
    "Connection": "gemflow.providers.connection",
    "GemflowError": "gemflow.errors",
    "WorkflowError": "gemflow.errors",
    "RunOptions": "gemflow.engine.runner",
    "run_workflow": "gemflow.engine.runner",
    "RunSummary": "gemflow.engine.events",
    "ResultStore": "gemflow.cache.store",
    "open_store": "gemflow.cache.store",
    "Store": "gemflow.cache.local",
    "default_cache_dir": "gemflow.cache.local",
    "Session": "gemflow.session",
    "open_session": "gemflow.session",
    "Workflow": "gemflow.workflow",
    "load_workflow": "gemflow.workflow.load",
}

if TYPE_CHECKING:
    from gemflow.api import Result, StepResult, arun, load, plan, run
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.cache.store import ResultStore, open_store
    from gemflow.engine.events import RunSummary
    from gemflow.engine.runner import RunOptions, run_workflow
    from gemflow.errors import GemflowError, WorkflowError
    from gemflow.providers.connection import Connection
    from gemflow.session import Session, open_session
    from gemflow.workflow import Workflow
    from gemflow.workflow.load import load_workflow


def __getattr__(name: str) -> Any:
    """Import lazily, so that ``gemflow --help`` does not load networkx, Pillow or the SDK."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'gemflow' has no attribute {name!r}")
