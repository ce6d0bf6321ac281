"""Click parameter types shared by gemflow's commands and the emulator's (which the CLI package
imports, so they cannot live there)."""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloat(click.FloatRange):
    """A ``click.FloatRange`` that refuses nan and infinity: nan passes any range check."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)
