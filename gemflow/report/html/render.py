"""The page as HTML: the template, stylesheet and script of this package with the page's markup.

Every piece of user text (prompts, ids, paths, the model's replies) goes through ``html.escape``;
the script never parses text as HTML. A Content-Security-Policy lets the page load nothing but its
own inline style and script (by hash) and pictures from data URIs or beside the report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from functools import cache
from html import escape
from importlib import metadata, resources
from string import Template
from typing import Any

from gemflow.engine.events import Status
from gemflow.report.html.collect import (
    MADE_FOR,
    SEVERITY,
    GroupView,
    InputLink,
    Page,
    Picture,
    StepView,
    status_words,
)
from gemflow.report.html.lineage import svg
from gemflow.report.html.money import SAVED, SPENT, TO_RUN
from gemflow.report.html.since import Segment, Since


@cache
def _asset(name: str) -> str:
    return (resources.files("gemflow.report.html") / name).read_text(encoding="utf-8")


def render(page: Page) -> str:
    css, js = _asset("report.css"), _asset("report.js")
    body = _Body(page).html()
    csp = (
        "default-src 'none'; img-src data: 'self' file:; "
        f"style-src '{_sha256(css)}'; script-src '{_sha256(js)}'; base-uri 'none'; form-action 'none'"
    )
    return Template(_asset("template.html")).substitute(
        csp=csp,
        version=escape(_version()),
        title=escape(f"{page.workflow.display_name} · gemflow report"),
        css=css,
        js=js,
        body=body,
    )


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _version() -> str:
    try:
        return metadata.version("gemflow")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Body:
    """The page's markup. Each thumbnail is embedded once; a repeat refers to the first."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.embedded: set[str] = set()

    def html(self) -> str:
        page = self.page
        parts = [self.header(), '<div class="wrap">']
        if page.nodes:
            parts.append(self.lineage())
        if page.jobs:
            parts.append(self.jobs())
        if page.since is not None:
            parts.append(self.since(page.since))
        parts.append('<main id="steps" class="part"><h2>Steps</h2>')
        parts.extend(self.group(group) for group in page.groups)
        parts.append("</main></div>")
        return "\n".join(parts)

    # -- the top of the page ----------------------------------------------------------------------

    def header(self) -> str:
        page, totals = self.page, self.page.totals
        when = "a dry run: what a run would do now" if page.dry_run else "the run just made"
        billed = (
            " (nothing billed: prices are what Google's API would charge)" if page.emulated else ""
        )
        sub = (
            f"gemflow report · statuses from {when} · results on {escape(page.service)}{billed}"
            f" · lock file {escape(page.lock_name)}"
        )
        figures = [_figure(str(totals.steps), "steps" if totals.steps != 1 else "step")]
        for status in SEVERITY:
            count = totals.counts.get(status)
            if count:
                figures.append(
                    _figure(str(count), status_words(Status(status), page.dry_run), status)
                )
        calls = "API calls this run" if not page.dry_run else "API calls a run would make"
        figures.append(_figure(f"{totals.api_calls:,}", calls))
        if pending := sum(job.pending for job in page.jobs):
            figures.append(
                _figure(str(pending), f"batch job{'s' * (pending != 1)} pending", "pending")
            )
        money = [
            (totals.made_for, MADE_FOR, "the results shown cost"),
            (totals.spent, SPENT, "spent by this run"),
            (totals.saved, SAVED, "saved by the cache"),
            (totals.to_run, TO_RUN, "to bring it up to date (estimate)"),
        ]
        for usd, figure, words in money:
            if usd or figure == MADE_FOR:
                tilde = "~" if figure in totals.estimated or figure == TO_RUN else ""
                figures.append(_figure(f"{tilde}${usd:.3f}", words, "money"))
        if totals.tokens:
            figures.append(_figure(f"{totals.tokens:,}", "tokens (results shown)"))
        notes = [str(w) for w in page.workflow.warnings]
        if page.store_note:
            notes.append(page.store_note)
        toc = ['<a href="#lineage">Lineage</a>'] if page.nodes else []
        if page.jobs:
            toc.append('<a href="#batch">Batch jobs</a>')
        if page.since is not None:
            toc.append(f'<a href="#changes">Changes since {escape(page.since.revision)}</a>')
        toc.append('<a href="#steps">Steps</a>')
        return "\n".join(
            [
                '<header class="top"><div class="wrap">',
                f"<h1>{escape(page.workflow.display_name)}</h1>",
                f'<p class="sub">{sub}</p>',
                f'<div class="figures">{"".join(figures)}</div>',
                _list("notes", notes),
                f'<nav class="toc">{"".join(toc)}</nav>',
                "</div></header>",
            ]
        )

    def lineage(self) -> str:
        legend = "".join(
            f"<span>{escape(words)}</span>"
            for words in (
                "click a step to go to its card",
                "green-grey: up to date",
                "blue: would run / ran",
                "red: failed",
                "amber dashes: blocked",
                "grey dashes: input files",
            )
        )
        return (
            '<section id="lineage" class="part"><h2>Lineage</h2>'
            f'<div class="lineage-box">{svg(self.page.nodes, self.page.edges)}</div>'
            f'<div class="legend">{legend}</div></section>'
        )

    def jobs(self) -> str:
        """The run's Batch API jobs (a dry run: those still pending), with the steps in each."""
        rows = []
        for job in self.page.jobs:
            steps = ", ".join(
                f'<a href="#{escape(self.page.anchors.get(step, ""))}">{escape(step)}</a>'
                for step in job.steps
            )
            submitted = ""
            if job.submitted is not None:
                submitted = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.submitted))
            state = job.state.removeprefix("JOB_STATE_").lower()
            rows.append(
                f'<tr class="{"pending" if job.pending else "ended"}">'
                f'<td class="mono">{escape(job.name or "(not created yet)")}</td>'
                f"<td>{escape(state)}</td><td>{escape(job.model)}</td>"
                f"<td>{job.requests:,}</td><td>{escape(submitted)}</td><td>{steps}</td></tr>"
            )
        head = "<tr><th>job</th><th>state</th><th>model</th><th>requests</th>"
        head += "<th>submitted</th><th>steps waiting on it</th></tr>"
        note = (
            "<p>Recorded in the cache's <code>batches/</code> folder, as last seen. A run "
            "collects the answers of a job that has ended; <code>gemflow batch resume</code> "
            "waits for it.</p>"
            if any(job.pending for job in self.page.jobs)
            else ""
        )
        return (
            '<section id="batch" class="part"><h2>Batch jobs</h2>'
            f'{note}<table class="jobs"><thead>{head}</thead><tbody>{"".join(rows)}</tbody>'
            "</table></section>"
        )

    def since(self, since: Since) -> str:
        parts = [
            '<section id="changes" class="part">',
            f"<h2>Changes since {escape(since.revision)}</h2>",
        ]
        if not since.changes and not since.removed:
            parts.append("<p>No step's parameters changed.</p>")
        for change in since.changes:
            first = change.steps[0]
            anchor = self.page.anchors.get(first, "")
            more = len(change.steps) - 1
            count = (
                f' <span class="count">and {more} more instance{"s" * (more != 1)} alike</span>'
                if more
                else ""
            )
            parts.append(
                f'<div class="change"><h3><a href="#{escape(anchor)}">{escape(first)}</a>'
                f"{count}</h3>"
            )
            if change.new:
                parts.append(f"<p>new since {escape(since.revision)}</p>")
            for name, segments in change.texts.items():
                parts.append(f'<div class="block-title">{escape(name)}</div>{_diff(segments)}')
            if change.params:
                items = [
                    f"<li><b>{escape(name)}</b> {escape(_value(old))} → {escape(_value(new))}</li>"
                    for name, old, new in change.params
                ]
                parts.append(f'<ul class="params">{"".join(items)}</ul>')
            parts.append("</div>")
        if since.removed:
            names = ", ".join(escape(name) for name in since.removed)
            parts.append(f"<p>Removed since {escape(since.revision)}: {names}</p>")
        parts.append("</section>")
        return "\n".join(parts)

    # -- steps ------------------------------------------------------------------------------------

    def group(self, group: GroupView) -> str:
        if not group.is_grid:
            return self.card(group.instances[0])
        counts = Counter(str(v.status) for v in group.instances if v.status is not None)
        badges = "".join(
            f'<span class="badge {s}">{counts[s]} {escape(status_words(Status(s), self.page.dry_run))}'
            "</span>"
            for s in SEVERITY
            if counts.get(s)
        )
        first = group.instances[0]
        intro = [
            f'<div class="head"><h3>{escape(group.id)}</h3>'
            f'<span class="kind">{escape(group.kind)}</span>'
            f"<span>{len(group.instances)} instances</span>{badges}</div>",
        ]
        if description := first.step.params.get("description"):
            intro.append(f'<p class="desc">{escape(str(description))}</p>')
        if group.shared_prompt:
            intro.append(_prompt(group.shared_prompt, "prompt (every instance)"))
        if first.system and all(v.system == first.system for v in group.instances):
            intro.append(_prompt(first.system, "system instruction"))
        if group.shared:
            intro.append(_params(group.shared))
        rows = []
        for heading, views in group.rows:
            title = f'<h4 class="row-title">{escape(heading)}</h4>' if heading else ""
            cells = "".join(self.cell(view, group) for view in views)
            rows.append(f'{title}<div class="grid">{cells}</div>')
        worst = next((s for s in SEVERITY if counts.get(s)), "none")
        return (
            f'<section class="group status-{worst}" id="{escape(group.anchor)}">'
            f'<div class="intro">{"".join(intro)}</div>{"".join(rows)}</section>'
        )

    def cell(self, view: StepView, group: GroupView) -> str:
        status = str(view.status) if view.status else "none"
        media = self.media(view, compact=True)
        money = f'<span class="money-line">{escape(view.cost.words())}</span>' if view.cost else ""
        details = [f'<p class="reason">{escape(view.reason)}</p>' if view.reason else ""]
        if view.error:
            details.append(f'<p class="error">{escape(view.error)}</p>')
        if view.prompt and not group.shared_prompt:
            details.append(_prompt(view.prompt, "prompt"))
        if view.prompt_now:
            details.append(_changed_prompt(view.prompt_now))
        own = {k: v for k, v in view.params.items() if k not in group.shared}
        if own:
            details.append(_params(own))
        details.append(self.facts(view))
        details.append(_replies(view.texts))
        return (
            f'<figure class="cell status-{status}" id="{escape(view.anchor)}">'
            f'<div class="cell-media">{media}</div>'
            f'<figcaption><span class="caption">{escape(view.caption)}</span>'
            f"{_badge(view)}{money}</figcaption>"
            f"<details><summary>details</summary>{''.join(details)}</details></figure>"
        )

    def card(self, view: StepView) -> str:
        status = str(view.status) if view.status else "none"
        body = [
            f'<div class="head"><h3>{escape(view.step.id)}</h3>'
            f'<span class="kind">{escape(view.step.kind.name)}</span>{_badge(view)}</div>'
        ]
        if view.reason:
            body.append(f'<p class="reason">{escape(view.reason)}</p>')
        if view.error:
            body.append(f'<p class="error">{escape(view.error)}</p>')
        if description := view.step.params.get("description"):
            body.append(f'<p class="desc">{escape(str(description))}</p>')
        if view.probe is not None:  # the verdict first: what the step is for
            body.append(self.probe(view))
        elif view.prompt:
            body.append(_prompt(view.prompt, "prompt"))
        if view.prompt_now:
            body.append(_changed_prompt(view.prompt_now))
        if view.system:
            body.append(_prompt(view.system, "system instruction"))
        body.append(_replies(view.texts))
        body.append(self.facts(view))
        if view.params:
            body.append(_params(view.params))
        media = "" if view.probe is not None else f'<div class="media">{self.media(view)}</div>'
        wide = " wide" if not media else ""
        return (
            f'<article class="card{wide} status-{status}" id="{escape(view.anchor)}">'
            f'{media}<div class="body">{"".join(body)}</div></article>'
        )

    def probe(self, view: StepView) -> str:
        probe = view.probe
        assert probe is not None  # called for a probe's card only
        confidence = f" · confidence {probe.confidence:.2f}" if probe.confidence is not None else ""
        parts = [
            '<div class="probe">',
            f'<p class="probe-verdict">verdict: <b class="verdict-{escape(probe.verdict)}">'
            f"{escape(probe.verdict)}</b>{confidence}</p>",
            _list("why", probe.why),
        ]
        if probe.hidden_text:
            parts.append(_prompt(probe.hidden_text, "text the service put ahead of the prompt"))
        if view.prompt:
            parts.append(_prompt(view.prompt, "prompt under test"))
        if probe.sheet is not None:
            parts.append('<div class="block-title">evidence sheet (click for full size)</div>')
            parts.append(f'<div class="sheet">{self.picture(probe.sheet)}</div>')
        parts.append("</div>")
        return "".join(parts)

    def media(self, view: StepView, *, compact: bool = False) -> str:
        if view.picture is not None and view.before is not None and not compact:
            return self.slider(view.picture, view.before)
        if view.picture is not None:
            return self.picture(view.picture)
        return f'<div class="noimage">{escape(_why_no_picture(view))}</div>'

    def slider(self, after: Picture, before: Picture) -> str:
        return (
            '<div class="ba">'
            f'<a class="full" href="{escape(after.href or "")}" '
            f'data-caption="{escape(after.caption)}"><div class="ba-frame">'
            f"{self.img(before, 'ba-before')}{self.img(after, 'ba-after')}</div></a>"
            '<input class="ba-range" type="range" min="0" max="100" value="50" '
            'aria-label="Slide between after (left) and before (right)">'
            f'<div class="ba-labels"><span>← after</span>'
            f"<span>{escape(before.caption)} →</span></div></div>"
        )

    def picture(self, picture: Picture) -> str:
        img = self.img(picture, "thumb")
        if picture.href is None:
            return img
        return (
            f'<a class="full" href="{escape(picture.href)}" '
            f'data-caption="{escape(picture.caption)}">{img}</a>'
        )

    def img(self, picture: Picture, css: str) -> str:
        thumb = picture.thumb
        size = f'width="{thumb.width}" height="{thumb.height}"'
        alt = escape(picture.caption)
        if thumb.digest in self.embedded:
            return f'<img class="{css}" {size} alt="{alt}" data-same="{escape(thumb.digest)}">'
        self.embedded.add(thumb.digest)
        return (
            f'<img class="{css}" {size} alt="{alt}" data-digest="{escape(thumb.digest)}" '
            f'src="{thumb.uri}">'
        )

    def facts(self, view: StepView) -> str:
        rows: list[tuple[str, str]] = []
        entry = view.entry
        if view.model:
            rows.append(("model", escape(view.model)))
        if entry is not None and entry.model_version:
            rows.append(("version", escape(entry.model_version)))  # as the API answered
        if view.service:
            rows.append(("made by", escape(view.service)))
        if entry is not None and entry.tokens:
            rows.append(("tokens", escape(_tokens(entry.tokens))))
        if view.cost is not None:
            rows.append(("cost", escape(view.cost.words())))
        if view.inputs:
            rows.append(("inputs", ", ".join(self.input_link(i) for i in view.inputs)))
        if entry is not None and entry.refused:
            rows.append(("result", escape(f"refused as expected ({entry.refused}): no output")))
        elif view.output_href is not None:
            rows.append(
                (
                    "output",
                    f'<a href="{escape(view.output_href)}">{escape(view.step.output_rel)}</a>',
                )
            )
        else:
            rows.append(("output", f"{escape(view.step.output_rel)} (not on disk)"))
        if entry is not None and len(entry.takes) > 1:
            current = next(
                (n for n, t in enumerate(entry.takes, 1) if t.get("key") == entry.key), 0
            )
            rows.append(("takes", escape(f"{len(entry.takes)} kept; this is take {current}")))
        if entry is not None:
            rows.append(
                (
                    "key",
                    f'<span class="mono" title="{escape(entry.key)}">'
                    f"{escape(entry.key.removeprefix('sha256:')[:16])}…</span>",
                )
            )
        items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
        return f'<dl class="facts">{items}</dl>'

    def input_link(self, link: InputLink) -> str:
        if link.anchor is not None:
            count = f" ({link.count} instances)" if link.count > 1 else ""
            return f'<a href="#{escape(link.anchor)}">{escape(link.text)}</a>{count}'
        if link.href is not None:
            return f'<a href="{escape(link.href)}">{escape(link.text)}</a>'
        return escape(link.text)


# -- small pieces ---------------------------------------------------------------------------------


def _figure(value: str, words: str, css: str = "") -> str:
    return f'<div class="figure {css}"><b>{escape(value)}</b><span>{escape(words)}</span></div>'


def _badge(view: StepView) -> str:
    status = str(view.status) if view.status else "none"
    return f'<span class="badge {status}">{escape(view.status_words)}</span>'


def _list(css: str, items: Iterable[str]) -> str:
    texts = [f"<li>{escape(item)}</li>" for item in items]
    return f'<ul class="{css}">{"".join(texts)}</ul>' if texts else ""


def _prompt(text: str, title: str) -> str:
    """A prompt as written; one that parses as JSON (a structured prompt) pretty-printed."""
    shown, css = text, "prompt"
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        shown, css = json.dumps(parsed, indent=2, ensure_ascii=False), "prompt json"
    return (
        f'<div class="block-title">{escape(title)}</div>'
        f'<pre class="{css}"><code>{escape(shown)}</code></pre>'
    )


def _changed_prompt(segments: list[Segment]) -> str:
    return (
        '<div class="block-title">the workflow\'s prompt now (differs from the one that made '
        "this)</div>" + _diff(segments)
    )


def _diff(segments: list[Segment]) -> str:
    tags = {"-": "del", "+": "ins"}
    html = "".join(
        f"<{tags[op]}>{escape(text)}</{tags[op]}>" if op in tags else escape(text)
        for op, text in segments
    )
    return f'<div class="diff">{html}</div>'


def _replies(texts: list[str]) -> str:
    if not texts:
        return ""
    return '<div class="block-title">the model replied</div>' + _list("replies", texts)


def _params(params: dict[str, Any]) -> str:
    items = "".join(
        f"<li><b>{escape(name)}</b> {escape(_value(value))}</li>" for name, value in params.items()
    )
    return f'<ul class="params">{items}</ul>'


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 160 else text[:159] + "…"


def _tokens(tokens: dict[str, int]) -> str:
    shown = [f"{count:,} {name}" for name, count in tokens.items() if name != "total"]
    total = tokens.get("total")
    return " · ".join(shown) + (f" (total {total:,})" if total is not None else "")


def _why_no_picture(view: StepView) -> str:
    if view.entry is not None and view.entry.refused:
        return f"refused as expected ({view.entry.refused}): no picture"
    if view.entry is None:
        return "not made yet" + (f": {view.status_words}" if view.status else "")
    if view.step.format not in ("png", "webp", "jpeg"):
        return f"the output is {view.step.format.upper()}, not a picture"
    return "the picture cannot be read (gone from the cache and the disk)"
