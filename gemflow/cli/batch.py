"""``gemflow batch status|resume|cancel``: the Batch API jobs a workflow's runs submitted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from gemflow.engine.ledger import Ledger

from gemflow.cli.app import cache_dir_option, cli
from gemflow.providers.base import GOOGLE, service_name


@cli.group()
def batch() -> None:
    """Batch API jobs: what is pending, collect the answers, cancel."""


def _ledger(workflow: Path, cache_dir: Path | None) -> Ledger:
    from gemflow.cache.local import default_cache_dir
    from gemflow.engine.ledger import Ledger

    return Ledger((cache_dir or default_cache_dir(workflow.absolute())) / "batches")


@batch.command()
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False))
@cache_dir_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document: the jobs (name, display_name, model, requests, state, "
    "steps, submitted) and how many are pending.",
)
def status(workflow: Path, cache_dir: Path | None, as_json: bool) -> None:
    """The batch jobs this cache is waiting for, as last seen (a run updates them)."""
    records = _ledger(workflow, cache_dir).records()
    if as_json:
        jobs = [record.report().to_json() for record in records]
        document = {"workflow": str(workflow), "jobs": jobs, "pending": len(jobs)}
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    if not records:
        click.echo("no batch jobs pending")
        return
    for record in records:
        hours = (time.time() - record.created) / 3600
        state = record.state.removeprefix("JOB_STATE_").lower()
        steps = record.report().steps
        shown = ", ".join(steps[:5]) + (f" and {len(steps) - 5} more" if len(steps) > 5 else "")
        where = f"  on {record.service}" if record.service not in (None, GOOGLE) else ""
        click.echo(
            f"{record.job or '(not created)'}  {record.model}  {len(record.keys)} requests  "
            f"{state}  submitted {hours:.1f} h ago{where}" + (f"  steps: {shown}" if steps else "")
        )
    click.echo(
        f"{len(records)} job{'s' * (len(records) != 1)} pending: gemflow run {workflow} collects "
        f"the answers of those that have ended, gemflow batch resume {workflow} waits for them"
    )


@batch.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="WORKFLOW [RUN OPTIONS]...")
@click.pass_context
def resume(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Wait for the pending jobs, collect their answers and go on: gemflow run WORKFLOW --batch,
    with any of run's options (--base-url, --emulator, --json, --batch=auto, ...)."""
    from gemflow.cli.run import run

    with run.make_context("run", ["--batch", *args], parent=ctx) as sub:
        run.invoke(sub)


@batch.command()
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False))
@cache_dir_option
@click.option("--emulator", is_flag=True, help="The jobs are the built-in emulator's.")
@click.option("--base-url", metavar="URL", help="The API endpoint the jobs were sent to.")
def cancel(workflow: Path, cache_dir: Path | None, emulator: bool, base_url: str | None) -> None:
    """Cancel every pending job; their requests are asked again by the next run."""
    from gemflow.session import open_session

    ledger = _ledger(workflow, cache_dir)
    records = [r for r in ledger.records() if r.job]
    with open_session(workflow, emulator=emulator, base_url=base_url, cache="memory:") as session:
        service = service_name(session.connection.service)
        elsewhere = [r for r in records if r.service not in (None, service)]
        for record in records:
            if record in elsewhere:
                continue
            assert record.job is not None
            session.connection.batches(record.model).cancel(record.job)
            ledger.remove(record.display_name)
            click.echo(f"cancelled {record.job}")
    cancelled = len(records) - len(elsewhere)
    click.echo(f"{cancelled} job{'s' * (cancelled != 1)} cancelled")
    if elsewhere:
        from gemflow.errors import ConfigError

        where = sorted({str(r.service) for r in elsewhere})
        raise ConfigError(
            f"{len(elsewhere)} job{'s' * (len(elsewhere) != 1)} left: sent to "
            f"{', '.join(where)}, not {service}; cancel with {_reaching(where[0])}"
        )


def _reaching(service: str) -> str:
    """The option that sends to ``service``."""
    from gemflow.engine.outputs import is_emulated

    if service == GOOGLE:
        return "neither --emulator nor --base-url"
    if is_emulated(service):
        return "--emulator"
    return f"--base-url {service}"
