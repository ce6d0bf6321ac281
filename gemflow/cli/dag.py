"""``gemflow dag``: the step graph, for reading or for a README."""

from __future__ import annotations

from pathlib import Path

import click

from gemflow.cli.app import cli


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot", "json"]),
    default="text",
    show_default=True,
    help="text: one line per step; mermaid: a flowchart for a GitHub README; dot: Graphviz; "
    "json: nodes and edges.",
)
@click.option(
    "--instances",
    is_flag=True,
    help="Show each instance of a matrix step (default: one node per step as written).",
)
@click.option("--allow-outside", is_flag=True, help="Allow paths outside the workflow's folder.")
def dag(workflow: Path, fmt: str, instances: bool, allow_outside: bool) -> None:
    """Print WORKFLOW's steps and what each needs, inputs first. Sends nothing.

    An invalid workflow prints its problems and exits 2.
    """
    from gemflow.views.dag import build_dag, render
    from gemflow.workflow.load import load_workflow

    wf = load_workflow(workflow, allow_outside=allow_outside)
    click.echo(render(build_dag(wf, instances=instances), fmt), nl=False)
