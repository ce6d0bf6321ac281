"""``gemflow history`` and ``gemflow pick``: the takes kept for a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gemflow.cli.app import DEFAULT_WORKFLOW, cache_dir_option, cli
from gemflow.errors import Problem, WorkflowError

_emulator_option = click.option(
    "--emulator",
    is_flag=True,
    help="The takes made on the emulator (its own lock file); the default when it is the only one.",
)


def _lock(wf: Any, emulator: bool) -> Any:
    """The lock file: the emulator's with ``--emulator``, or when it is the only one."""
    from gemflow.engine.outputs import EMULATED, load_lock, lock_path

    only = not wf.lock_path.is_file() and lock_path(wf, EMULATED).is_file()
    return load_lock(wf, EMULATED if emulator or only else None)


def _workflow_and_step(args: tuple[str, ...], usage: str) -> tuple[Path, str]:
    """``[WORKFLOW] STEP``: the workflow defaults to gemflow.yaml in this folder."""
    if len(args) == 1:
        if Path(args[0]).suffix in (".yaml", ".yml"):
            raise click.UsageError(f"name the step too: {usage.replace('[WORKFLOW]', args[0])}")
        if not Path(DEFAULT_WORKFLOW).is_file():
            raise click.UsageError(f"no {DEFAULT_WORKFLOW} here: name the workflow ({usage})")
        return Path(DEFAULT_WORKFLOW), args[0]
    if len(args) == 2:
        return Path(args[0]), args[1]
    raise click.UsageError(usage)


def _instances(wf: Any, step: str) -> list[str]:
    chosen = wf.select(step)
    if not chosen:
        from gemflow.workflow.load import suggest

        problem = Problem(
            wf.display_name, None, None, f"no step '{step}'{suggest(step, wf.groups)}"
        )
        raise WorkflowError([problem])
    return list(chosen)


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[WORKFLOW] STEP")
@cache_dir_option
@_emulator_option
def history(args: tuple[str, ...], cache_dir: Path | None, emulator: bool) -> None:
    """List the takes kept for STEP: its variants' re-rolls and what --force replaced.

    STEP may be a matrix step (all its instances) or step[key=value,...].
    """
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.engine.takes import entry_for, takes
    from gemflow.outside import visible
    from gemflow.workflow.load import load_workflow

    path, step = _workflow_and_step(args, "gemflow history [WORKFLOW] STEP")
    wf = load_workflow(path)
    lock = _lock(wf, emulator)
    with Store(cache_dir or default_cache_dir(wf.path)) as store:
        for name in _instances(wf, step):
            found = takes(entry_for(lock, name), store)
            click.echo(f"{name}: {len(found)} take{'s' * (len(found) != 1)}")
            for take in found:
                mark = "*" if take.current else " "
                where = "" if take.stored else "  (no longer in the cache)"
                kept = "  (replaced by --force)" if "~" in take.key else ""
                digest = visible(take.digest.removeprefix("sha256:")[:12])  # a lock file's text
                click.echo(
                    f" {mark} {take.number:>2}  re-roll {take.reroll}  {digest}{kept}{where}"
                )


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[WORKFLOW] STEP N")
@cache_dir_option
@_emulator_option
def pick(args: tuple[str, ...], cache_dir: Path | None, emulator: bool) -> None:
    """Make take N of STEP its output (see gemflow history); no API call.

    The lock file records the choice: the next run keeps it and remakes what uses it.
    """
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.engine.takes import pick as pick_take
    from gemflow.workflow.load import load_workflow

    if len(args) < 2 or not args[-1].isdigit():
        raise click.UsageError("gemflow pick [WORKFLOW] STEP N")
    path, step = _workflow_and_step(args[:-1], "gemflow pick [WORKFLOW] STEP N")
    wf = load_workflow(path)
    names = _instances(wf, step)
    if len(names) > 1:
        raise click.UsageError(f"'{step}' names {len(names)} instances: pick one of them")
    lock = _lock(wf, emulator)
    with Store(cache_dir or default_cache_dir(wf.path)) as store:
        take = pick_take(wf, lock, store, names[0], int(args[-1]))
    output = wf.steps[names[0]].output_rel
    click.echo(
        f"{names[0]}: take {take.number} is the output now ({output}); "
        f"gemflow run {path} remakes the steps that use it"
    )
