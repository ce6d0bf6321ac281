"""``gemflow cache``: look at and check the result store."""

from __future__ import annotations

import sys
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


@cache.command()
@cache_dir_option
def info(cache_dir: Path | None) -> None:
    """Where the store is, what it holds and its size."""
    with _open_store(cache_dir) as store:
        facts = store.info()
    click.echo(
        f"{facts['directory']}: {facts['results']} step results, {facts['calls']} single "
        f"calls, {facts['thumbnails']} thumbnails, {facts['bytes'] / 1e6:.1f} MB"
    )


@cache.command()
@cache_dir_option
def verify(cache_dir: Path | None) -> None:
    """Check every stored result against its digest; drop corrupt ones (they run again)."""
    with _open_store(cache_dir) as store:
        total = len(store.keys())
        corrupt = store.verify()
    for key in corrupt:
        click.echo(f"corrupt, dropped: {key}", err=True)
    click.echo(f"{total} entries checked, {len(corrupt)} corrupt")
    sys.exit(EXIT_STEP_FAILED if corrupt else EXIT_OK)
