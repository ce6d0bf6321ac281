"""What the report shows, gathered from a run's summary, the lock file and the store; no HTML.

The run (or dry run) decided each step's status and reason; the lock file says which result is the
step's output and what made it (parameters, inputs, tokens, model version); the store adds what
only it keeps (the model's text replies) and the thumbnails. Nothing is decided again here.
Without a store entry (a fresh clone) a step shows what the lock file and the files on disk say.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gemflow.cache.lockfile import LockEntry, LockFile
from gemflow.cache.store import ResultStore
from gemflow.captions import SEPARATOR, captions
from gemflow.engine.events import BatchJobReport, RunSummary, Status, StepReport
from gemflow.engine.outputs import is_emulated
from gemflow.engine.reasons import describe
from gemflow.engine.refusals import PREFIX as REFUSAL
from gemflow.kinds.base import IMAGE_FORMATS
from gemflow.report.html.lineage import Node
from gemflow.report.html.money import SAVED, SPENT, TO_RUN, Cost, cost, price
from gemflow.report.html.since import Segment, Since, word_diff
from gemflow.report.html.thumbs import SHEET_PX, Source, Thumb, make_thumbs
from gemflow.workflow import Step, Workflow

# Parameters a card shows on lines of their own, or not at all (``sample`` and ``reroll`` are the
# key's bookkeeping: an instance's name and the takes say the same in words; a labelled grid's
# captions are what its inputs' names say).
_OWN_LINES = ("prompt", "system", "model", "service", "sample", "reroll", "captions")
MADE_FOR = "made for"
SEVERITY = ("failed", "blocked", "pending", "run", "restore", "cached")  # the worst first


@dataclass(frozen=True)
class Picture:
    thumb: Thumb
    href: str | None  # the full-size file, relative to the report
    caption: str


@dataclass(frozen=True)
class InputLink:
    text: str  # the reference as written; for several instances of one step, the step id
    anchor: str | None  # the card of the step it names
    href: str | None  # the file
    count: int = 1  # instances of one matrix step, in a row


@dataclass(frozen=True)
class ProbeView:
    verdict: str
    confidence: float | None
    why: list[str]
    hidden_text: str | None
    sheet: Picture | None


@dataclass
class StepView:
    step: Step
    anchor: str
    caption: str  # what tells a matrix instance apart (gemflow.captions); else the step id
    status: Status | None  # None: not part of this run (other targets were asked for)
    status_words: str
    reason: str
    error: str | None
    entry: LockEntry | None
    prompt: str | None  # of the result shown (the lock's), else the workflow's
    prompt_now: list[Segment] | None  # the workflow's prompt differs from the result's: how
    system: str | None
    params: dict[str, Any]
    service: str | None  # who made the result, in words; None for a local step
    cost: Cost | None
    texts: list[str]
    inputs: list[InputLink]
    output_href: str | None  # None: not on disk
    picture: Picture | None = None
    before: Picture | None = None  # an edit's first input
    probe: ProbeView | None = None

    @property
    def model(self) -> str | None:
        return (self.entry.params if self.entry else self.step.params).get("model")


@dataclass
class GroupView:
    """A step as written: one instance, or the instances of a matrix step shown as a grid."""

    id: str
    anchor: str
    instances: list[StepView]
    shared: dict[str, Any] = field(default_factory=dict)  # parameters every instance has alike
    shared_prompt: str | None = None
    rows: list[tuple[str, list[StepView]]] = field(default_factory=list)  # (heading, instances)

    @property
    def is_grid(self) -> bool:
        return len(self.instances) > 1

    @property
    def kind(self) -> str:
        return self.instances[0].step.kind.name


@dataclass
class Totals:
    steps: int
    counts: dict[str, int]  # status -> steps
    spent: float  # this run
    saved: float  # cache hits, priced as what they would have cost
    to_run: float  # a dry run's estimate for what would run
    made_for: float  # what the results shown cost to make, by the model table
    estimated: set[str]  # the figures (SAVED, "made for") that include an estimate (a probe's)
    tokens: int
    api_calls: int  # made by this run, or that a dry run would make


@dataclass
class Page:
    workflow: Workflow
    dry_run: bool
    service: str  # in words
    emulated: bool
    lock_name: str
    store_note: str | None  # said when there is no cache to read
    groups: list[GroupView]
    nodes: list[Node]
    edges: list[tuple[str, str]]
    totals: Totals
    since: Since | None
    anchors: dict[str, str]  # step (instance) name -> its card's anchor; matrix step -> its grid
    jobs: list[BatchJobReport] = field(default_factory=list)  # the run's, or pending (a dry run)


def collect(
    workflow: Workflow,
    summary: RunSummary,
    lock: LockFile,
    store: ResultStore,
    report_path: Path,
    *,
    since: Since | None = None,
    store_note: str | None = None,
) -> Page:
    reports = {r.id: r for r in summary.steps}
    folder = report_path.absolute().parent
    anchors = _anchors(workflow)
    views: dict[str, StepView] = {}
    sources: dict[str, dict[str, Source]] = {}
    for name, step in workflow.steps.items():
        entry = lock.entries.get(name)
        views[name] = _view(step, reports.get(name), entry, store, anchors, folder, summary)
        sources[name] = _sources(step, entry, lock, workflow)
    thumbs = make_thumbs((s for found in sources.values() for s in found.values()), store)
    for name, view in views.items():
        _pictures(view, sources[name], thumbs, folder)
        if view.step.kind.name == "probe" and view.entry is not None:
            view.probe = _probe(view, sources[name].get("sheet"), thumbs, store, folder)
    groups = [
        _group(group, anchors.get(group) or anchors[names[0]], [views[n] for n in names])
        for group, names in workflow.groups.items()
    ]
    nodes, edges = _graph(workflow, groups)
    return Page(
        workflow=workflow,
        dry_run=summary.dry_run,
        service=service_words(summary.service),
        emulated=is_emulated(summary.service),
        lock_name=lock.path.name,
        store_note=store_note,
        groups=groups,
        nodes=nodes,
        edges=edges,
        totals=_totals(summary, list(views.values())),
        since=since,
        anchors=anchors,
        jobs=list(summary.batch_jobs.values()),
    )


def service_words(service: str | None) -> str:
    if service is None:
        return "Google's API"
    if service.startswith("emulator+rewrite:"):
        return f"the emulator, rewriting prompts ({service.partition(':')[2]})"
    if is_emulated(service):
        return "the emulator"
    return service


def status_words(status: Status, dry_run: bool) -> str:
    if status is Status.RUN:
        return "would run" if dry_run else "ran"
    if status is Status.RESTORE:
        return "would restore" if dry_run else "restored"
    return {Status.CACHED: "up to date"}.get(status, str(status))


# -- one step -------------------------------------------------------------------------------------


def _view(
    step: Step,
    report: StepReport | None,
    entry: LockEntry | None,
    store: ResultStore,
    anchors: dict[str, str],
    folder: Path,
    summary: RunSummary,
) -> StepView:
    recipe = {**step.kind.recipe(step.params), "format": step.format}
    recorded = entry.params if entry is not None else recipe
    prompt = _text(recorded.get("prompt"))
    now = _text(recipe.get("prompt"))
    meta = (store.meta(entry.key) or {}) if entry is not None else {}
    texts = meta.get("texts") or []
    if entry is not None and entry.refused:  # what the model said instead of drawing
        refusal = (store.meta(REFUSAL + entry.key) or {}).get("refusal") or {}
        texts = [refusal.get("text")]
    return StepView(
        step=step,
        anchor=anchors[step.id],
        caption=step.id,
        status=report.status if report else None,
        status_words=status_words(report.status, summary.dry_run) if report else "not in this run",
        reason=describe(report.reason) if report else "",
        error=report.error if report else None,
        entry=entry,
        prompt=prompt,
        prompt_now=word_diff(prompt, now) if prompt and now and prompt != now else None,
        system=_text(recorded.get("system")),
        params={k: v for k, v in recorded.items() if k not in _OWN_LINES},
        # who made the result; for a step with none yet, who this run asked (or would ask)
        service=service_words(recorded.get("service") if entry else summary.service)
        if step.uses_api
        else None,
        cost=cost(step, report, entry, dry_run=summary.dry_run),
        texts=[t for t in texts if isinstance(t, str) and t.strip()],
        inputs=_inputs(step, anchors, folder),
        output_href=_href(step.output, folder) if step.output.is_file() else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _inputs(step: Step, anchors: dict[str, str], folder: Path) -> list[InputLink]:
    """Links to the step's inputs; instances of one matrix step in a row are one link to its grid."""
    links: list[InputLink] = []
    groups: list[str | None] = []  # the matrix step of each link, if it is an instance
    for ref in step.refs:
        if ref.step is None:
            href = _href(ref.path, folder) if ref.path is not None else None
            links.append(InputLink(ref.text, None, href))
            groups.append(None)
            continue
        group = ref.step.partition("[")[0] if "[" in ref.step else None
        if group is not None and groups and groups[-1] == group:
            links[-1] = InputLink(group, anchors.get(group), None, links[-1].count + 1)
        else:
            links.append(InputLink(ref.text, anchors.get(ref.step), None))
            groups.append(group)
    return links


def _sources(
    step: Step, entry: LockEntry | None, lock: LockFile, workflow: Workflow
) -> dict[str, Source]:
    """Where the step's pictures can be read: its output, an edit's first input, a probe's sheet."""
    found: dict[str, Source] = {}
    if entry is None or entry.refused:
        return found
    if step.format in IMAGE_FORMATS:
        found["picture"] = Source(entry.digest, step.output, entry.key)
    if step.kind.name == "probe":
        sheet = next((name for name in entry.attachments if name.endswith("/sheet.png")), None)
        if sheet is not None:
            path = step.output.parent / sheet
            found["sheet"] = Source(entry.attachments[sheet], path, entry.key, sheet, SHEET_PX)
    if step.kind.name == "edit" and step.refs and entry.inputs:
        ref = step.refs[0]
        if ref.step is not None:  # its picture now: the one the edit used, unless made again since
            upstream = lock.entries.get(ref.step)
            output = workflow.steps[ref.step].output
            if upstream is not None:
                found["before"] = Source(upstream.digest, output, upstream.key)
        elif ref.path is not None:
            found["before"] = Source(str(entry.inputs[0].get("digest", "")), ref.path)
    return found


def _pictures(
    view: StepView, sources: dict[str, Source], thumbs: dict[Source, Thumb], folder: Path
) -> None:
    step = view.step
    if (source := sources.get("picture")) and source in thumbs:
        view.picture = Picture(thumbs[source], view.output_href, f"{step.id} · {step.output_rel}")
    if (source := sources.get("before")) and source in thumbs:
        ref = step.refs[0]
        href = _href(source.path, folder) if source.path and source.path.is_file() else None
        view.before = Picture(thumbs[source], href, f"before: {ref.text}")


def _probe(
    view: StepView,
    sheet: Source | None,
    thumbs: dict[Source, Thumb],
    store: ResultStore,
    folder: Path,
) -> ProbeView | None:
    """The verdict from the probe's JSON report (its output: on disk, else in the store), and its
    evidence sheet."""
    assert view.entry is not None  # only a probe that has a result is shown with its verdict
    try:
        data = view.step.output.read_bytes()
    except OSError:
        files = store.files(view.entry.key)
        data = files[0] if files is not None else b""
    try:
        report = json.loads(data)
    except ValueError:
        return None
    if not isinstance(report, dict):
        return None
    why = report.get("why")
    confidence = report.get("confidence")
    return ProbeView(
        verdict=str(report.get("verdict") or "unknown"),
        confidence=float(confidence) if isinstance(confidence, int | float) else None,
        why=[str(w) for w in why] if isinstance(why, list) else [],
        hidden_text=_text(report.get("hidden_text")),
        sheet=_sheet(view.step, sheet, thumbs, folder),
    )


def _sheet(
    step: Step, sheet: Source | None, thumbs: dict[Source, Thumb], folder: Path
) -> Picture | None:
    if sheet is None or sheet not in thumbs or sheet.path is None:
        return None
    href = _href(sheet.path, folder) if sheet.path.is_file() else None
    return Picture(thumbs[sheet], href, f"{step.id} · evidence sheet")


def _href(path: Path, folder: Path) -> str:
    """``path`` as a link from the report's folder: relative, so the report works from the repo."""
    try:
        relative = os.path.relpath(path.absolute(), folder)
    except ValueError:  # another drive (Windows)
        return path.absolute().as_uri()
    return quote(Path(relative).as_posix())


# -- groups, graph, totals ------------------------------------------------------------------------


def _anchors(workflow: Workflow) -> dict[str, str]:
    """A readable, unique HTML id for each step's card, and for each matrix step's grid (by its
    id as written)."""
    found: dict[str, str] = {}
    taken: set[str] = set()

    def unique(base: str) -> str:
        anchor, n = base, 1
        while anchor in taken:
            n += 1
            anchor = f"{base}-{n}"
        taken.add(anchor)
        return anchor

    for group, names in workflow.groups.items():
        if len(names) > 1:
            found[group] = unique(f"group-{_slug(group)}")
        for name in names:
            found[name] = unique(f"step-{_slug(name)}")
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "step"


def _group(group: str, anchor: str, views: list[StepView]) -> GroupView:
    found = GroupView(group, anchor, views, rows=[("", views)])
    if not found.is_grid:
        return found
    differing = [
        key
        for key in dict.fromkeys(k for v in views for k, _ in v.step.values)
        if len({dict(v.step.values).get(key) for v in views}) > 1
    ]
    row_key = differing[0] if len(differing) > 1 else None
    rows: dict[str, list[StepView]] = {}
    for view, caption in zip(views, captions([v.step.id for v in views]), strict=True):
        heading = ""
        if row_key is not None:  # one row per value of the first key that differs
            heading = f"{row_key}={dict(view.step.values).get(row_key)}"
            caption = SEPARATOR.join(p for p in caption.split(SEPARATOR) if p != heading)
        view.caption = caption
        rows.setdefault(heading, []).append(view)
    found.rows = list(rows.items())
    first = views[0].params
    found.shared = {k: v for k, v in first.items() if all(x.params.get(k) == v for x in views)}
    prompts = {view.prompt for view in views}
    if len(prompts) == 1:
        found.shared_prompt = views[0].prompt
    return found


def _graph(workflow: Workflow, groups: list[GroupView]) -> tuple[list[Node], list[tuple[str, str]]]:
    """Nodes for input files and for steps as written; edges between them."""
    files: dict[str, Node] = {}
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    for group in groups:
        count = len(group.instances)
        states = Counter(str(v.status) for v in group.instances if v.status is not None)
        css = next((s for s in SEVERITY if states.get(s)), "none")
        what = f"{group.kind} step" + (f", {count} instances" if count > 1 else "")
        label = group.id + (f" ×{count}" if count > 1 else "")
        nodes.append(Node(f"s:{group.id}", label, f"#{group.anchor}", css, f"{group.id}: {what}"))
        for view in group.instances:
            for ref in view.step.refs:
                if ref.step is not None:
                    edges.append((f"s:{workflow.steps[ref.step].written_id}", f"s:{group.id}"))
                elif ref.path is not None:
                    node_id = f"f:{ref.text}"
                    files.setdefault(node_id, Node(node_id, ref.text, None, "file", ref.text))
                    edges.append((node_id, f"s:{group.id}"))
    return [*files.values(), *nodes], edges


def _totals(summary: RunSummary, views: list[StepView]) -> Totals:
    money: dict[str, float] = {SPENT: 0.0, SAVED: 0.0, TO_RUN: 0.0}
    estimated: set[str] = set()
    made_for = 0.0
    tokens = 0
    for view in views:
        if view.cost is not None:
            money[view.cost.how] += view.cost.usd
            if view.cost.estimated:
                estimated.add(view.cost.how)
        if view.entry is not None:
            priced = price(view.step, view.entry)
            if priced is not None:
                made_for += priced[0]
                if priced[1]:
                    estimated.add(MADE_FOR)
            tokens += int(view.entry.tokens.get("total", 0))
    counts = {k: v for k, v in summary.counts().items() if v}
    return Totals(
        steps=len(views),
        counts=counts,
        spent=money[SPENT],
        saved=money[SAVED],
        to_run=money[TO_RUN],
        made_for=made_for,
        estimated=estimated,
        tokens=tokens,
        api_calls=summary.api_calls,
    )
