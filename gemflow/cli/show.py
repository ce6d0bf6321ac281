"""``gemflow show``: where an output came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gemflow.cli.app import cache_dir_option, cli


@cli.command()
@click.argument("target", metavar="PATH_OR_STEP")
@click.option(
    "-w",
    "--workflow",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The workflow to look in (default: for a path, the lock files in its folder and above; "
    "for a step, gemflow.yaml here).",
)
@cache_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per file.")
def show(target: str, workflow: Path | None, cache_dir: Path | None, as_json: bool) -> None:
    """Say which step made a file: from which prompt, model and inputs, when, at what cost.

    PATH_OR_STEP is an output (or an attachment) of a workflow, or a step id, an instance name
    or step[key=value,...]. The lock file is the record, so this works in a fresh clone; a cache,
    when there is one, adds when each result was stored. Sends nothing.
    """
    from gemflow.outside import visible, visible_json
    from gemflow.views.provenance import explain, find, to_json

    records = find(target, workflow)
    stores: dict[Path, Any] = {}
    try:
        found = [(record, _stored(stores, cache_dir, record)) for record in records]
    finally:
        for store in stores.values():
            if store is not None:
                store.close()
    if as_json:
        documents = [to_json(record, stored) for record, stored in found]
        click.echo(visible_json(json.dumps(documents, indent=2, ensure_ascii=False)))
        return
    # The lock file may have been edited by hand, or by someone hostile: its text is shown with
    # its control characters escaped, never acting on the terminal.
    for n, (record, stored) in enumerate(found):
        if n:
            click.echo()
        click.echo(visible(record.file if not record.entry.refused else record.step))
        lines = explain(record, stored)
        width = max(len("settings"), *(len(label) for label, _ in lines))
        for label, text in lines:
            for i, line in enumerate(text.splitlines() or [""]):
                shown = visible(line)
                click.echo(f"  {(label if i == 0 else '').ljust(width)}  {shown}".rstrip())


def _stored(stores: dict[Path, Any], cache_dir: Path | None, record: Any) -> dict | None:
    """The cache's metadata of the record's result, when a cache is there (none is made)."""
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.engine.refusals import PREFIX

    directory = cache_dir or default_cache_dir(record.workflow)
    if directory not in stores:
        stores[directory] = Store(directory) if (directory / "cache.db").is_file() else None
    store = stores[directory]
    if store is None:
        return None
    key = PREFIX + record.entry.key if record.entry.refused else record.entry.key
    meta: dict | None = store.meta(key)
    return meta
