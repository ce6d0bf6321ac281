"""``gemflow report``: the offline HTML report of a workflow; and ``gemflow run --report``'s end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gemflow.cli.app import DEFAULT_WORKFLOW, cache_dir_option, cli

if TYPE_CHECKING:
    from gemflow.cache.store import ResultStore
    from gemflow.engine.events import RunSummary
    from gemflow.workflow import Workflow

REPORT_SUFFIXES = (".html", ".htm")


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write it (default: the workflow's name with .report.html, beside it).",
)
@click.option("--open", "open_it", is_flag=True, help="Open it in the web browser.")
@click.option(
    "--since",
    metavar="REV",
    help="Show what changed since the git revision REV: the lock file then against now, "
    "prompts word by word.",
)
@click.option(
    "--emulator",
    is_flag=True,
    help="Report the results made on the emulator (WORKFLOW.emulator.lock); the default when "
    "there are no others.",
)
@cache_dir_option
@click.option(
    "--allow-outside",
    is_flag=True,
    help="Allow input and output paths outside the workflow's folder.",
)
def report(
    workflow: Path | None,
    output: Path | None,
    open_it: bool,
    since: str | None,
    emulator: bool,
    cache_dir: Path | None,
    allow_outside: bool,
) -> None:
    """Write an offline HTML report of WORKFLOW (gemflow.yaml when none is named).

    Every step with its picture, prompt, parameters, model, tokens and cost, and its status and
    reason now (a dry run: nothing is sent, no key is needed). Works without a cache, from the
    lock file and the files on disk.
    """
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.cache.memory import MemoryStore
    from gemflow.report.html import plan, recorded_service, write_report
    from gemflow.workflow.load import load_workflow

    if workflow is None:
        if not Path(DEFAULT_WORKFLOW).is_file():
            raise click.UsageError(f"name a workflow file: there is no {DEFAULT_WORKFLOW} here")
        workflow = Path(DEFAULT_WORKFLOW)
    _check_suffix(output, "--output")
    wf = load_workflow(workflow, allow_outside=allow_outside)
    directory = cache_dir or default_cache_dir(wf.path)
    note = None
    store: ResultStore
    if (directory / "cache.db").is_file():
        store = Store(directory)
    else:  # a fresh clone: say what the lock file and the files say; leave no cache behind
        store = MemoryStore()
        note = (
            f"no cache at {directory}: shown from the lock file and the files on disk "
            "(no model replies)"
        )
    try:
        summary = plan(wf, store, recorded_service(wf, emulator=emulator))
        path = write_report(wf, store, summary, output, since=since, store_note=note)
    finally:
        store.close()
    _written(path)
    if open_it:
        import webbrowser

        webbrowser.open(path.absolute().as_uri())


def check_run_option(value: str | None, workflows: int) -> None:
    """``gemflow run --report [PATH]``, checked before anything runs."""
    if value and workflows > 1:
        raise click.UsageError("--report PATH goes with one workflow: leave PATH out")
    _check_suffix(Path(value) if value else None, "--report")


def after_run(workflow: Workflow, store: ResultStore, summary: RunSummary, value: str) -> None:
    """The report of the run just made: at ``value``, or beside the workflow when it is ""."""
    from gemflow.report.html import write_report

    _written(write_report(workflow, store, summary, Path(value) if value else None))


def _check_suffix(path: Path | None, option: str) -> None:
    if path is not None and path.suffix.lower() not in REPORT_SUFFIXES:
        raise click.UsageError(
            f"{option} {path}: the report is an .html file (targets go before --report)"
        )


def _written(path: Path) -> None:
    size = path.stat().st_size
    click.echo(f"report: {path} ({size / 1e6:.1f} MB)", err=True)
