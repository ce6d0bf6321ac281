"""``gemflow cache gc``: remove the store entries no lock file refers to."""

from __future__ import annotations

from pathlib import Path

import click

from gemflow.cli.app import cache_dir_option
from gemflow.cli.cache import cache
from gemflow.cli.clean import size_text
from gemflow.errors import ConfigError


@cache.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also remove single calls stored before gemflow recorded which step made them.",
)
@click.option("-v", "--verbose", is_flag=True, help="List each entry removed.")
@cache_dir_option
def gc(
    folders: tuple[Path, ...],
    dry_run: bool,
    everything: bool,
    verbose: bool,
    cache_dir: Path | None,
) -> None:
    """Remove the store entries that no lock file in FOLDERS refers to (default: this folder,
    searched recursively for x.lock and x.emulator.lock beside x.yaml).

    Kept: every step's current result and its takes, expected refusals, the single calls of the
    steps kept, thumbnails of recorded pictures. Removed: results no lock file names any more
    (earlier prompts, removed steps), which then cost a call to make again. Name every folder
    whose workflows use this store.
    """
    from gemflow.cache.gc import collect, find_locks, plan
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.workflow.plan import PLANS_DIRNAME, unused_plans

    directory = cache_dir or default_cache_dir(Path.cwd() / "workflow.yaml")
    if not (directory / "cache.db").is_file():
        raise ConfigError(f"no cache at {directory}")
    locks = find_locks(folders or (Path("."),))
    with Store(directory) as store:
        chosen = plan(store, locks, everything=everything)
        if verbose:
            for key in chosen.remove:
                step = (store.meta(key) or {}).get("step")
                click.echo(f"  {key}" + (f"  ({step})" if step else ""))
        if not dry_run:
            collect(store, chosen)
    unused = unused_plans(directory / PLANS_DIRNAME)
    freed = sum(_size(plan_file) for plan_file in unused)
    if not dry_run:
        for plan_file in unused:
            plan_file.unlink(missing_ok=True)
    names = ", ".join(_shown(lock) for lock in chosen.locks)
    click.echo(f"{len(chosen.locks)} lock file{'s' * (len(chosen.locks) != 1)}: {names}")
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{directory}: {chosen.entries} entries; {verb} {len(chosen.remove)} "
        f"({size_text(chosen.bytes)})"
    )
    if unused:
        count = len(unused)
        click.echo(
            f"{verb} {count} plan{'s' * (count != 1)} of workflow files no longer there "
            f"({size_text(freed)})"
        )
    if chosen.untied:
        click.echo(
            f"kept {chosen.untied} single call{'s' * (chosen.untied != 1)} stored before gemflow "
            "recorded their steps (--all removes them)"
        )


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
