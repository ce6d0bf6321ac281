"""``gemflow schema``: the JSON Schema of workflow files, for editors."""

from __future__ import annotations

import json

import click

from gemflow.cli.app import cli


@cli.command()
def schema() -> None:
    """Print a JSON Schema (draft 2020-12) for workflow files.

    \b
    Save it and point your editor at it, e.g. with VS Code's YAML extension:
      gemflow schema > gemflow.schema.json
      # first line of a workflow:
      # yaml-language-server: $schema=gemflow.schema.json
    """
    from gemflow.workflow.schema import workflow_schema

    click.echo(json.dumps(workflow_schema(), indent=2, ensure_ascii=False))
