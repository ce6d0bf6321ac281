"""Human output on stderr: a line per step that did something, live progress, a summary.

Whatever came from outside (errors, a model's words, names) goes through ``escape``: markup is
escaped on a styled terminal, and control characters everywhere, so no text can act on the
terminal.

On a terminal it is styled by rich, with a live spinner; into a pipe or a file it is plain text,
and rich is not even imported (it is a noticeable share of a no-op run's time).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from gemflow.engine.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    RunSummary,
    Status,
    StepFinished,
    StepReport,
    StepStarted,
)
from gemflow.engine.reasons import describe
from gemflow.outside import visible

_STYLE = {
    Status.CACHED: "dim",
    Status.RESTORE: "cyan",
    Status.RUN: "green",
    Status.BLOCKED: "yellow",
    Status.FAILED: "bold red",
    Status.PENDING: "magenta",
}


class _Plain:
    """Unstyled lines on stderr."""

    is_terminal = False

    def style(self, text: str, style: str) -> str:
        return text

    def escape(self, text: str) -> str:
        return visible(text)

    def print(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


class _Rich:
    """Styled lines and a spinner, through a rich Console."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.markup import escape

        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.is_terminal = self.console.is_terminal
        self._markup_escape = escape

    def escape(self, text: str) -> str:
        return self._markup_escape(visible(text))

    def style(self, text: str, style: str) -> str:
        return f"[{style}]{text}[/]"

    def print(self, text: str) -> None:
        self.console.print(text)

    def status(self, message: str) -> Any:
        return self.console.status(message)


class TerminalReporter:
    def __init__(self, console: Any = None, *, verbose: bool = False, quiet: bool = False) -> None:
        """``console``: a rich Console to write to; by default rich on a terminal, else plain.
        ``quiet``: failures and warnings only."""
        self.out: _Plain | _Rich = (
            _Rich(console) if console is not None or _styled_terminal() else _Plain()
        )
        self.verbose = verbose
        self.quiet = quiet
        self.dry_run = False
        self.emulated = False  # the emulator bills nothing: costs are what Google would charge
        self.total = 0
        self.finished = 0
        self.running: dict[str, StepStarted] = {}
        self.spinner: Any = None  # a rich Status, on a terminal only

    def __call__(self, event: Event) -> None:
        if self.quiet:
            self.quietly(event)
        elif isinstance(event, RunStarted):
            self.started(event)
        elif isinstance(event, StepStarted):
            self.running[event.id] = event
            self.update_spinner()
        elif isinstance(event, StepFinished):
            self.step_finished(event.report)
        elif isinstance(event, Notice):
            out = self.out
            out.print(f"{out.style(event.level + ':', 'yellow')} {out.escape(event.message)}")
        elif isinstance(event, RunFinished):
            self.stop_spinner()
            self.summarise(event.summary)

    def quietly(self, event: Event) -> None:
        """Only what needs the user: warnings, and each failure."""
        out = self.out
        if isinstance(event, Notice) and event.level == "warning":
            out.print(f"{out.style('warning:', 'yellow')} {out.escape(event.message)}")
        elif isinstance(event, StepFinished) and event.report.status is Status.FAILED:
            self.failure(event.report)

    def failure(self, report: StepReport) -> None:
        out = self.out
        head = out.style("failed:", "bold red")
        out.print(f"{head} {out.escape(report.id)}: {out.escape(report.error or '')}")

    def started(self, event: RunStarted) -> None:
        self.dry_run, self.total = event.dry_run, len(event.steps)
        self.emulated = (event.service or "").startswith("emulator")
        mode = " · dry run: nothing is sent" if event.dry_run else ""
        if self.emulated:
            mode += " · on the emulator"
        steps = f"{self.total} step{'s' * (self.total != 1)}"
        name = self.out.style(self.out.escape(event.workflow), "bold")
        self.out.print(f"{name}: {steps} ({event.api_steps} API){mode}")

    def step_finished(self, report: StepReport) -> None:
        self.finished += 1
        self.running.pop(report.id, None)
        # A step's own result (a probe's verdict) is what the user asked for: shown even if cached.
        if report.status is not Status.CACHED or self.verbose or report.result:
            self.out.print(self.line(report))
        self.update_spinner()

    def line(self, report: StepReport) -> str:
        out = self.out
        status = "would run" if self.dry_run and report.status is Status.RUN else str(report.status)
        details = [out.escape(describe(report.reason))]
        if report.api_calls:
            calls = "call" if report.api_calls == 1 else "calls"
            details.append(f"{report.api_calls} API {calls}")
        if report.usd and not self.emulated:
            details.append(f"{'~' if self.dry_run else ''}${report.usd:.3f}")
        if report.seconds >= 0.05:
            details.append(f"{report.seconds:.1f}s")
        if report.result:
            details.append(out.style(out.escape(_result_text(report.result)), "bold"))
        label = out.style(f"{status:<9}", _STYLE[report.status])
        text = f"  {label} {out.escape(report.id):<20} {' · '.join(details)}"
        if report.error:
            text += f"\n  {'':<9} {'':<20} {out.style(out.escape(report.error), 'red')}"
        return text

    def update_spinner(self) -> None:
        if not isinstance(self.out, _Rich) or not self.out.is_terminal:
            return
        if not self.running:
            self.stop_spinner()
            return
        names = ", ".join(list(self.running)[:4]) + (" …" if len(self.running) > 4 else "")
        message = (
            f"{self.finished}/{self.total} done · running {len(self.running)}: "
            f"{self.out.escape(names)}"
        )
        if self.spinner is None:
            self.spinner = self.out.status(message)
            self.spinner.start()
        else:
            self.spinner.update(message)

    def stop_spinner(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None

    def summarise(self, summary: RunSummary) -> None:
        if not summary.steps:  # stopped before any step was decided (no API key, say)
            return
        counts = {k: v for k, v in summary.counts().items() if v}
        if self.dry_run and "run" in counts:
            counts["would run"] = counts.pop("run")
        parts = [", ".join(f"{n} {status}" for status, n in counts.items())]
        calls = summary.api_calls
        if self.dry_run:
            parts.append(
                f"would make {calls} API call{'s' * (calls != 1)}, est. ${summary.usd:.3f}"
            )
        else:
            parts.append(f"{calls} API call{'s' * (calls != 1)}")
            tokens = summary.tokens().get("total")
            if tokens:
                parts.append(f"{tokens:,} tokens")
            if summary.usd and self.emulated:
                parts.append(f"nothing billed (Google's API: ~${summary.usd:.3f})")
            elif summary.usd:
                parts.append(f"~${summary.usd:.3f}")
        if jobs := len(summary.pending_jobs):
            parts.append(self.out.style(f"{jobs} batch job{'s' * (jobs != 1)} pending", "magenta"))
        if summary.interrupted:
            parts.append(self.out.style("interrupted", "red"))
        self.out.print(" · ".join(parts))
        if jobs and not self.dry_run:
            name = self.out.escape(_shown(Path(summary.workflow)))
            self.out.print(
                f"run again to collect the answers of jobs that have ended (gemflow batch "
                f"resume {name} waits for them)"
            )
        if not self.dry_run and (where := _outputs(summary)):
            self.out.print(where)
        for report in summary.steps:
            if report.status is Status.FAILED:
                self.failure(report)


def _outputs(summary: RunSummary) -> str | None:
    """Where the run's outputs are: ``5 outputs in workflows/out/``."""
    made = [
        s.output for s in summary.steps if s.status in (Status.CACHED, Status.RESTORE, Status.RUN)
    ]
    if not made:
        return None
    root = Path(summary.workflow).parent
    folder = Path(os.path.commonpath([str(root / output) for output in made]))
    if (root / made[0]) == folder:  # one output: its folder
        folder = folder.parent
    shown = _shown(folder)
    text = "." if shown == "." else f"{shown}/"
    return f"{len(made)} output{'s' * (len(made) != 1)} in {text}"


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def _styled_terminal() -> bool:
    """Styles only on a terminal, and not when NO_COLOR is set (https://no-color.org: any
    non-empty value); rich itself drops colours for NO_COLOR but still writes bold."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def _result_text(result: dict) -> str:
    """A kind's summary on one line: its scalar fields, words before numbers, then by name (a
    cached summary comes back with sorted keys), e.g. "verdict rewritten, confidence 0.9"."""
    scalars = [(k, v) for k, v in result.items() if isinstance(v, str | int | float | bool)]
    scalars.sort(key=lambda item: (not isinstance(item[1], str), item[0]))
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars)
