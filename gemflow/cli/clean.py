"""``gemflow clean``: remove the outputs a workflow made."""

from __future__ import annotations

from pathlib import Path

import click

from gemflow.cli.app import cli


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option(
    "--allow-outside",
    is_flag=True,
    help="Also remove recorded outputs outside the workflow's folder.",
)
def clean(workflow: Path, dry_run: bool, allow_outside: bool) -> None:
    """Remove the outputs WORKFLOW made, and their attachments; nothing else.

    Only files its lock file records, with the content it records: a file edited since is kept
    and reported. The cache keeps every result, so gemflow run restores them with no API call.
    """
    from gemflow.cache.clean import clean as clean_outputs

    done = clean_outputs(workflow, dry_run=dry_run, allow_outside=allow_outside)
    if not done.locked:
        click.echo(f"{workflow.with_suffix('.lock')} does not exist: nothing was made to remove")
        return
    verb = "would remove" if dry_run else "removed"
    for rel in done.removed:
        click.echo(f"{verb} {rel}")
    for rel in done.folders:
        click.echo(f"{verb} {rel}/ (left empty)")
    for rel, why in done.kept:
        click.echo(f"kept {rel}: {why}", err=True)
    files = f"{len(done.removed)} file{'s' * (len(done.removed) != 1)}"
    summary = f"{verb} {files} ({size_text(done.bytes)})"
    if done.kept:
        summary += f"; kept {len(done.kept)}"
    if done.missing:
        summary += f"; {done.missing} already gone"
    if done.removed and not dry_run:
        summary += f"; gemflow run {workflow} restores them from the cache"
    click.echo(summary)


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"
