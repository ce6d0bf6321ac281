"""``gemflow cache``: look at and check the result store."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from gemflow.cli.app import cache_dir_option, cli
from gemflow.errors import EXIT_OK, EXIT_STEP_FAILED, ConfigError


@cli.group()
def cache() -> None:
    """Inspect and check the result store."""


def _open_store(cache_dir: Path | None) -> Any:
    from gemflow.cache.local import Store, default_cache_dir

    directory = cache_dir or default_cache_dir(Path.cwd() / "workflow.yaml")
    if not directory.is_dir():
        raise ConfigError(f"no cache at {directory}")
    return Store(directory)


remote_option = click.option(
    "--remote",
    metavar="URL",
    help="The team cache: s3://bucket/prefix or gs://bucket/prefix "
    "(default: the workflow's defaults.remote, else GEMFLOW_REMOTE).",
)


@cache.command()
@cache_dir_option
@remote_option
def info(cache_dir: Path | None, remote: str | None) -> None:
    """Where the store is, what it holds and its size; the remote, and whether it answers."""
    from gemflow.cache.tiered import TieredStore, remote_settings

    url = remote_settings(remote).url
    try:
        with _open_store(cache_dir) as store:
            facts = store.info()
    except ConfigError:
        if url is None:
            raise
        click.echo(f"no local cache at {cache_dir or _default_dir()}")
    else:
        click.echo(
            f"{facts['directory']}: {facts['results']} step results, {facts['calls']} single "
            f"calls, {facts['thumbnails']} thumbnails, {facts['bytes'] / 1e6:.1f} MB"
        )
    if url is not None:
        from gemflow.cache.memory import MemoryStore

        with TieredStore(MemoryStore(), url) as tiers:
            problem = tiers.ping()
        click.echo(f"remote {url}: " + ("answers" if problem is None else f"no answer: {problem}"))


@cache.command()
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False), required=False)
@cache_dir_option
@remote_option
def push(workflow: Path | None, cache_dir: Path | None, remote: str | None) -> None:
    """Upload to the remote the results WORKFLOW's lock files name (gemflow.yaml by default) that
    it lacks: what a run could not push. Create-only: a key the remote has keeps its result."""
    with _tiers(workflow, cache_dir, remote) as (tiers, keys, names):
        report = tiers.push_keys(keys)
    click.echo(
        f"pushed {len(report.copied)} result(s) to {tiers.url}; "
        f"{len(report.present)} were there already"
    )
    if report.differ:
        click.echo(
            f"{len(report.differ)} key(s) hold another result on the remote (the first pushed "
            "is the team's; a run with the remote takes it)",
            err=True,
        )
    if report.missing:
        click.echo(
            f"{len(report.missing)} result(s) named in {names} are not in the local cache",
            err=True,
        )


@cache.command()
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False), required=False)
@cache_dir_option
@remote_option
def pull(workflow: Path | None, cache_dir: Path | None, remote: str | None) -> None:
    """Download from the remote the results WORKFLOW's lock files name (gemflow.yaml by default)
    that the local cache lacks, verified; the next run restores them without calling the API."""
    with _tiers(workflow, cache_dir, remote) as (tiers, keys, names):
        report = tiers.pull_keys(keys)
    click.echo(
        f"pulled {len(report.copied)} result(s) from {tiers.url}; "
        f"{len(report.present)} were here already"
    )
    if report.missing:
        click.echo(f"{len(report.missing)} result(s) named in {names} are not on the remote")


@contextlib.contextmanager
def _tiers(
    workflow: Path | None, cache_dir: Path | None, remote: str | None
) -> Iterator[tuple[Any, list[str], str]]:
    """The local store with the remote behind it, the keys WORKFLOW's lock files name, and the
    names of those files."""
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.cache.lockfile import LockFile
    from gemflow.cache.tiered import TieredStore, lock_keys, remote_settings
    from gemflow.cli.app import DEFAULT_WORKFLOW
    from gemflow.engine.outputs import EMULATED, lock_path
    from gemflow.workflow.load import load_workflow

    wf = load_workflow(workflow or Path(DEFAULT_WORKFLOW))
    url = remote_settings(remote, None, wf.settings).url
    if url is None:
        raise click.UsageError(
            "no remote: pass --remote, or set defaults.remote in the workflow or GEMFLOW_REMOTE"
        )
    locks = [LockFile.load(lock_path(wf, service)) for service in (None, EMULATED)]
    found = [lock for lock in locks if lock.signature is not None]
    keys = [key for lock in found for key in lock_keys(lock)]
    names = " and ".join(lock.path.name for lock in found) or wf.lock_path.name
    with TieredStore(Store(cache_dir or default_cache_dir(wf.path)), url) as tiers:
        yield tiers, keys, names


def _default_dir() -> Path:
    from gemflow.cache.local import default_cache_dir

    return default_cache_dir(Path.cwd() / "workflow.yaml")


@cache.command()
@cache_dir_option
def verify(cache_dir: Path | None) -> None:
    """Check every stored result against its digest; drop corrupt ones (they run again)."""
    with _open_store(cache_dir) as store:
        total = len(store.keys())
        corrupt = store.verify()
        done = "left (the cache is read-only)" if store.read_only else "dropped"
    for key in corrupt:
        click.echo(f"corrupt, {done}: {key}", err=True)
    click.echo(f"{total} entries checked, {len(corrupt)} corrupt")
    sys.exit(EXIT_STEP_FAILED if corrupt else EXIT_OK)


from gemflow.cli import gc as _gc  # noqa: E402, F401  (registers "cache gc" in this group)
