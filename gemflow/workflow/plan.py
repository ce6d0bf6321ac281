"""A loaded workflow kept for the next run, like a ``.pyc``: parsing, checking and resolving a
10,000-step file takes seconds; reading back what that made takes a tenth of it.

A plan is reused only when all of these are as they were when it was made:

- the workflow file's bytes, its absolute path, the current folder (messages show paths
  relative to it) and ``--allow-outside``;
- gemflow itself: its version and the size and mtime of each of its files (an edited checkout is
  another gemflow), and the Python version;
- every answer the loader got from the disk (``gemflow.workflow.disk``): each included prompt
  file's bytes, each folder's real path and symbolic links, each input file's type, whether a
  sibling ``.yml`` exists.

A plan is written only for a workflow that loaded without problems. It lives in the cache folder
(``plans/``, one file per workflow path, replaced when the workflow changes); one that cannot be
read, or was written by another gemflow, is simply not used. It is unpickled with only the
workflow's own record types allowed, so a planted file cannot run code.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any

from gemflow.workflow import MAX_WORKFLOW_BYTES, Workflow
from gemflow.workflow.disk import Disk, read_regular_file, still_true

PLAN_FORMAT = 1
PLANS_DIRNAME = "plans"
# What a plan may hold: the workflow's records, nothing that runs code when it is read.
_ALLOWED = {
    ("gemflow.workflow", "Step"),
    ("gemflow.workflow", "Ref"),
    ("gemflow.errors", "Problem"),
    ("gemflow.kinds", "kind_named"),
    ("gemflow.workflow.yamlsafe", "LineDict"),
    ("gemflow.workflow.yamlsafe", "LineList"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
}


def plans_folder(
    workflow_path: str | os.PathLike[str], cache: str | os.PathLike[str] | None = None
) -> Path | None:
    """Where loaded workflows are kept for the next run: ``plans/`` in the cache folder; nowhere
    for a store that is not a folder (``memory:``)."""
    from gemflow.cache.local import cache_location
    from gemflow.cache.store import store_folder

    folder = store_folder(cache_location(workflow_path, cache))
    return None if folder is None else folder / PLANS_DIRNAME


def load_planned(path: Path, *, allow_outside: bool, folder: Path | None) -> Workflow:
    """``path`` loaded (``gemflow.workflow.load``), from its plan in ``folder`` when it is
    still good; a fresh load is kept there for the next time. No folder: just loaded."""
    try:
        data, _ = read_regular_file(path, MAX_WORKFLOW_BYTES + 1)
    except OSError:  # the loader says what is wrong with the file
        data = None
    if folder is None or data is None:
        return _loader(path, allow_outside).load()
    plan_file = folder / f"{_digest(str(path.absolute()).encode())[:32]}.plan"
    key = plan_key(path, data, allow_outside)
    workflow = _read_plan(plan_file, key)
    if workflow is not None:
        return workflow
    loader = _loader(path, allow_outside, data)
    workflow = loader.load()
    _write_plan(plan_file, key, loader.disk, workflow)
    return dataclasses.replace(workflow, source=(key, loader.disk.seen))


def current_key(path: Path, allow_outside: bool) -> str:
    """The key a plan of ``path`` as it is now has (``OSError`` if it cannot be read)."""
    data, _ = read_regular_file(path, MAX_WORKFLOW_BYTES + 1)
    return plan_key(path, data, allow_outside)


def _loader(path: Path, allow_outside: bool, data: bytes | None = None) -> Any:
    from gemflow.workflow.load import _Loader  # PyYAML and the checks: only to load anew

    return _Loader(path, allow_outside=allow_outside, data=data)


def plan_key(path: Path, data: bytes, allow_outside: bool) -> str:
    """What a plan for ``path`` with content ``data`` is valid for, besides the disk's answers."""
    about = (PLAN_FORMAT, code_signature(), str(path.absolute()), os.getcwd(), allow_outside)
    return _digest(repr(about).encode() + b"\0" + data)


@functools.cache
def code_signature() -> str:
    """This gemflow and this Python: the version, and each source file's size and mtime."""
    import gemflow

    package = os.path.dirname(gemflow.__file__)
    seen = [sys.version, getattr(gemflow, "__version__", "")]
    for folder, subfolders, names in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(names):
            if name.endswith((".py", ".toml")):
                info = os.stat(os.path.join(folder, name))
                seen.append(f"{folder}/{name}:{info.st_size}:{info.st_mtime_ns}")
    return _digest("\n".join(seen).encode())


def _read_plan(plan_file: Path, key: str) -> Workflow | None:
    try:
        with open(plan_file, "rb") as handle:
            plan = _Unpickler(io.BytesIO(handle.read())).load()
        if plan["format"] != PLAN_FORMAT or plan["key"] != key or not still_true(plan["seen"]):
            return None
        return Workflow(
            path=Path(plan["path"]),
            steps={step.id: step for step in plan["steps"]},
            warnings=tuple(plan["warnings"]),
            settings=plan["settings"],
            source=(key, plan["seen"]),
        )
    except Exception:  # a missing, damaged or foreign plan is no plan
        return None


def _write_plan(plan_file: Path, key: str, disk: Disk, workflow: Workflow) -> None:
    plan: dict[str, Any] = {
        "format": PLAN_FORMAT,
        "key": key,
        "seen": disk.seen,
        "path": str(workflow.path),
        "steps": list(workflow.steps.values()),
        "warnings": list(workflow.warnings),
        "settings": dict(workflow.settings),
    }
    from gemflow.fileio import write_atomic

    try:
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(plan_file, pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass  # a read-only or full cache: the next run loads the file again, that is all


def unused_plans(folder: Path) -> list[Path]:
    """The plans in ``folder`` no run can use again: of workflow files that are gone, or that
    cannot be read (``gemflow cache gc`` removes them; the rest are replaced as they go stale)."""
    unused = []
    for plan_file in sorted(folder.glob("*.plan")):
        try:
            with open(plan_file, "rb") as handle:
                workflow = Path(_Unpickler(io.BytesIO(handle.read())).load()["path"])
            if workflow.is_file():
                continue
        except Exception:  # damaged or foreign: of no use either
            pass
        unused.append(plan_file)
    return unused


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"a plan holds no {module}.{name}")
        return super().find_class(module, name)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
