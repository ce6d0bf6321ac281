"""The loaded, validated workflow: plain immutable data, produced by ``gemflow.workflow.load``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemflow.errors import Problem
    from gemflow.kinds.base import StepKind


@dataclass(frozen=True)
class Ref:
    """One input reference as written, resolved to either a step id or a file."""

    text: str
    step: str | None = None
    path: Path | None = None  # absolute, for a file reference

    @property
    def is_step(self) -> bool:
        return self.step is not None


@dataclass(frozen=True)
class Step:
    id: str
    kind: StepKind
    params: Mapping[str, Any]  # vars substituted, defaults applied, validated
    refs: tuple[Ref, ...]  # inputs in the order written
    output: Path  # absolute
    output_rel: str  # as shown to users and recorded in the lock: relative to the workflow folder
    format: str  # png | webp | jpeg
    line: int

    @property
    def uses_api(self) -> bool:
        return self.kind.uses_api


@dataclass(frozen=True)
class Workflow:
    path: Path  # the YAML file, absolute
    steps: dict[str, Step]  # in file order
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    @property
    def display_name(self) -> str:
        return self.path.name
