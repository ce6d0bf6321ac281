"""Matrix steps: one step written, one instance per combination of its ``matrix`` values and each
of its ``variants``.

An instance's name is its step id with the values that make it, in the order written, and the
variant last: ``pancake[model=gemini-3-pro-image,aspect_ratio=16:9,variant=2]``. Names are stable
(adding a value adds instances, it renames none), usable as targets, and a name with only some of
the values (``pancake[model=gemini-3-pro-image]``) selects every instance that has them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

VARIANT = "variant"
MAX_INSTANCES = 20_000  # per step: bounds what one line of YAML can make the loader build
FORBIDDEN = ",=[]"  # would make a name ambiguous
_SELECTOR = re.compile(r"(?P<step>[A-Za-z_][A-Za-z0-9_-]*)\[(?P<pairs>[^\[\]]*)\]\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Instance:
    name: str
    values: tuple[tuple[str, str], ...]  # (key, value as text), in order, the variant last
    sample: int = 0  # the variant, counted from 0: part of the key when not 0

    @property
    def slug(self) -> str:
        """The instance's values as a file name: ``gemini-3-pro-image_16x9_v2``."""
        parts = [f"v{value}" if key == VARIANT else value for key, value in self.values]
        return "_".join(_UNSAFE.sub("-", part.replace(":", "x")) for part in parts)


def expand(
    step: str, matrix: Sequence[tuple[str, Sequence[str]]], variants: int | None
) -> list[Instance]:
    """Every instance of ``step``, in order: the first matrix key changes slowest, the variant
    fastest. Without a matrix and variants, the one instance is the step itself."""
    if not matrix and variants is None:
        return [Instance(step, ())]
    axes = [[(key, value) for value in values] for key, values in matrix]
    if variants is not None:
        axes.append([(VARIANT, str(n)) for n in range(1, variants + 1)])
    instances = []
    for combination in itertools.product(*axes):
        variant = dict(combination).get(VARIANT)
        instances.append(
            Instance(name_of(step, combination), combination, int(variant) - 1 if variant else 0)
        )
    return instances


def count(matrix: Sequence[tuple[str, Sequence[str]]], variants: int | None) -> int:
    total = variants or 1
    for _, values in matrix:
        total *= len(values)
    return total


def name_of(step: str, values: Iterable[tuple[str, str]]) -> str:
    pairs = ",".join(f"{key}={value}" for key, value in values)
    return f"{step}[{pairs}]" if pairs else step


def parse_selector(text: str) -> tuple[str, dict[str, str]] | None:
    """(step id, values) for ``step[key=value,...]``; None for anything else."""
    match = _SELECTOR.match(text)
    if match is None:
        return None
    values: dict[str, str] = {}
    for pair in filter(None, match["pairs"].split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            return None
        values[key.strip()] = value.strip()
    return match["step"], values


def select(
    text: str, groups: Mapping[str, Sequence[str]], values: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """The instances ``text`` names: a step id (all its instances), an instance's full name, or a
    selector with some of the values. ``groups``: step id -> instance names in order; ``values``:
    instance name -> its values."""
    if text in groups:
        return list(groups[text])
    parsed = parse_selector(text)
    if parsed is None or parsed[0] not in groups:
        return []
    step, wanted = parsed
    return [
        name
        for name in groups[step]
        if all(values[name].get(key) == value for key, value in wanted.items())
    ]
