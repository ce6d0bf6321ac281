"""The loaded, validated workflow: plain immutable data, produced by ``gemflow.workflow.load``."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemflow.errors import Problem
    from gemflow.kinds.base import StepKind


# A workflow larger than this is almost surely not one; the limit also bounds the time a hostile
# file can take to parse (about 5 s with libyaml for a megabyte of tiny mappings).
MAX_WORKFLOW_BYTES = 4 * 1024 * 1024  # 10,000 steps in block style take about 2 MiB


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
    group: str = ""  # the step id as written; an instance of a matrix step has a name of its own
    values: tuple[tuple[str, str], ...] = ()  # an instance's matrix values and variant, as text
    sample: int = 0  # which variant (from 0): part of the key when not 0

    @property
    def uses_api(self) -> bool:
        return self.kind.uses_api

    @property
    def written_id(self) -> str:
        """The step id in the file (an instance's step)."""
        return self.group or self.id


@dataclass(frozen=True)
class Workflow:
    path: Path  # the YAML file, absolute
    steps: dict[str, Step]  # in file order
    warnings: tuple[Problem, ...] = field(default=())
    settings: Mapping[str, Any] = field(
        default_factory=dict
    )  # defaults about the run: remote, push
    # What it was loaded from, when a plan was kept (gemflow.workflow.plan): the plan's key and
    # the disk's answers to the loader.
    source: tuple[str, list[Any]] | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def graph(self) -> Any:
        """The steps as a networkx ``DiGraph``: an edge from each input step to the step using it."""
        from gemflow.engine.graph import to_networkx

        return to_networkx(self)

    @functools.cached_property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Each step id in the file -> the names of its instances, in order."""
        found: dict[str, list[str]] = {}
        for name, step in self.steps.items():
            found.setdefault(step.written_id, []).append(name)
        return {group: tuple(names) for group, names in found.items()}

    def select(self, text: str) -> list[str]:
        """The steps ``text`` names: a step id (every instance of a matrix step), an instance, or
        ``step[key=value,...]`` with some of an instance's values. Empty when it names none."""
        from gemflow.workflow.instances import select

        values = {name: dict(step.values) for name, step in self.steps.items() if step.values}
        return select(text, self.groups, values)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    @property
    def display_name(self) -> str:
        return self.path.name
