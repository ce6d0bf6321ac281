"""gemflow from Python: run a workflow in a notebook or a script, and look at what it made.

    import gemflow
    result = gemflow.run("workflows/quickstart.yaml", emulator=True)
    result["pancake"].image        # a PIL image
    result                         # in Jupyter: a grid of thumbnails with the step names

``run`` works inside a running event loop (Jupyter) as outside one: a run is threads and blocking
HTTP, never the loop's; ``arun`` awaits it from async code without blocking the loop.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemflow.engine.events import RunSummary, Status, StepReport
from gemflow.engine.reasons import describe
from gemflow.engine.runner import RunOptions
from gemflow.session import open_session
from gemflow.workflow import Step, Workflow
from gemflow.workflow.load import load_workflow

if TYPE_CHECKING:
    from PIL import Image

THUMBNAIL = 192  # pixels on the long side, in a notebook's grid


@dataclass(frozen=True)
class StepResult:
    """One step of a run: what it made, and how."""

    step: Step
    report: StepReport

    @property
    def id(self) -> str:
        return self.step.id

    @property
    def path(self) -> Path:
        """The output file."""
        return self.step.output

    @property
    def status(self) -> str:
        return str(self.report.status)

    @property
    def reason(self) -> str:
        return describe(self.report.reason)

    @property
    def ok(self) -> bool:
        return self.report.status not in (Status.FAILED, Status.BLOCKED)

    @property
    def image(self) -> Image.Image:
        """The output as a PIL image, read now (``FileNotFoundError`` if the step made none)."""
        from PIL import Image

        with Image.open(self.path) as opened:
            opened.load()
            return opened.copy()

    def __repr__(self) -> str:
        return f"<StepResult {self.id}: {self.status} ({self.reason})>"


@dataclass
class Result(Mapping[str, StepResult]):
    """A run (or a plan): each selected step's result by id, in the order they finished."""

    workflow: Workflow
    summary: RunSummary
    steps: dict[str, StepResult] = field(init=False)

    def __post_init__(self) -> None:
        self.steps = {r.id: StepResult(self.workflow.steps[r.id], r) for r in self.summary.steps}

    def __getitem__(self, name: str) -> StepResult:
        if name in self.steps:
            return self.steps[name]
        chosen = self.workflow.select(name)
        if len(chosen) == 1 and chosen[0] in self.steps:
            return self.steps[chosen[0]]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def ok(self) -> bool:
        return self.summary.ok

    @property
    def outputs(self) -> dict[str, Path]:
        """The output file of every step that has one now."""
        return {sid: r.path for sid, r in self.steps.items() if r.ok and r.path.is_file()}

    @property
    def calls(self) -> int:
        """API requests sent (a plan: that would be sent)."""
        return self.summary.api_calls

    @property
    def cost(self) -> float:
        """USD spent (a plan: estimated), by the model table."""
        return self.summary.usd

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.summary.counts().items() if n)
        return f"<Result {self.workflow.display_name}: {counts}; {self.calls} API calls>"

    def _repr_html_(self) -> str:
        cells = "".join(_cell(r) for r in self.steps.values())
        head = html.escape(repr(self))
        return (
            f"<div><p><code>{head}</code></p>"
            '<div style="display:flex;flex-wrap:wrap;gap:8px">'
            f"{cells}</div></div>"
        )


def load(path: str | os.PathLike[str], *, allow_outside: bool = False) -> Workflow:
    """The workflow at ``path``, validated; ``.graph`` is its networkx DAG."""
    return load_workflow(path, allow_outside=allow_outside)


def run(
    path: str | os.PathLike[str],
    targets: Iterable[str] = (),
    *,
    emulator: bool = False,
    api_key: str | None = None,
    base_url: str | None = None,
    cache: str | os.PathLike[str] | None = None,
    force: Iterable[str] = (),
    reroll: Iterable[str] = (),
    jobs: int = 8,
    dry_run: bool = False,
    listen: Iterable[Any] = (),
) -> Result:
    """Build the workflow at ``path`` (or only ``targets`` and what they need).

    ``emulator``: gemflow's built-in emulator (no key, nothing billed). Else Google's API, with
    ``api_key`` or the environment's (``GEMINI_API_KEY``), or ``base_url``. ``cache``: the store
    (a folder, ``memory:``; default: as the command line). ``listen``: callables that receive the
    run's events (``gemflow.engine.events``).
    """
    workflow = load(path)
    options = RunOptions(
        targets=tuple(targets),
        force=frozenset(force),
        reroll=frozenset(reroll),
        jobs=jobs,
        dry_run=dry_run,
    )
    events: list[Any] = list(listen)
    with open_session(
        workflow.path, emulator=emulator, api_key=api_key, base_url=base_url, cache=cache
    ) as session:
        summary = session.run(workflow, options, emit=events)
    return Result(workflow, summary)


def plan(path: str | os.PathLike[str], targets: Iterable[str] = (), **options: Any) -> Result:
    """What ``run`` would do, and why, and what it would cost: nothing is sent, no key needed."""
    return run(path, targets, dry_run=True, **options)


async def arun(path: str | os.PathLike[str], *args: Any, **options: Any) -> Result:
    """``run`` for async code: runs in a worker thread, so the event loop goes on."""
    return await asyncio.to_thread(run, path, *args, **options)


def _cell(result: StepResult) -> str:
    name = html.escape(result.id)
    status = html.escape(f"{result.status}: {result.reason}")
    picture = _thumbnail(result.path) if result.ok else None
    body = (
        f'<img src="data:image/png;base64,{picture}" alt="{name}" '
        'style="max-width:100%;max-height:100%">'
        if picture
        else "<span>no picture</span>"
    )
    return (
        f'<figure style="margin:0;width:{THUMBNAIL}px" title="{status}">'
        f'<div style="height:{THUMBNAIL}px;display:flex;align-items:center;'
        f'justify-content:center;background:#f4f4f4">{body}</div>'
        f'<figcaption style="font:12px sans-serif;word-break:break-all">{name}</figcaption>'
        "</figure>"
    )


def _thumbnail(path: Path) -> str | None:
    """A small PNG of the image at ``path``, base64, or None if it is not a picture."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            opened.save(buffer, format="PNG")
    except (OSError, UnidentifiedImageError):
        return None
    return base64.b64encode(buffer.getvalue()).decode()
