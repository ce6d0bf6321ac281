"""``gemflow validate``: check workflow files without running anything."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gemflow.cli.app import cli
from gemflow.errors import EXIT_OK, EXIT_USAGE


@cli.command()
@click.argument("workflows", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--allow-outside", is_flag=True, help="Allow paths outside each workflow's folder.")
def validate(workflows: tuple[Path, ...], allow_outside: bool) -> None:
    """Check WORKFLOWS: every problem and warning of each file, at once.

    Sends nothing and needs no API key. Exit 0 when every file is valid, 2 when any is not.
    """
    from gemflow.workflow.load import check_workflow

    invalid = 0
    for path in workflows:
        checked = check_workflow(path, allow_outside=allow_outside)
        for problem in checked.problems:
            click.echo(f"error: {problem}", err=True)
        for warning in checked.warnings:
            click.echo(f"warning: {warning}", err=True)
        warned = f", {_count(len(checked.warnings), 'warning')}" if checked.warnings else ""
        if checked.workflow is None:
            invalid += 1
            click.echo(f"{path}: invalid, {_count(len(checked.problems), 'problem')}{warned}")
            continue
        wf = checked.workflow
        size = _count(len(wf.groups), "step")
        if len(wf.steps) != len(wf.groups):
            size += f" ({_count(len(wf.steps), 'instance')})"
        click.echo(f"{path}: valid, {size}{warned}")
    if len(workflows) > 1:
        click.echo(
            f"{invalid} of {len(workflows)} workflows are invalid"
            if invalid
            else f"all {len(workflows)} workflows are valid"
        )
    sys.exit(EXIT_USAGE if invalid else EXIT_OK)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'s' * (n != 1)}"
