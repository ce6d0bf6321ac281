"""Step kinds, registered in this one place. Adding a kind: write its module, add it here."""

from collections.abc import Mapping

from gemflow.kinds.base import Field, StepKind
from gemflow.kinds.composite import Composite
from gemflow.kinds.edit import Edit
from gemflow.kinds.generate import Generate
from gemflow.kinds.probe import Probe
from gemflow.kinds.resize import Resize

KINDS: dict[str, StepKind] = {
    kind.name: kind for kind in (Generate(), Edit(), Composite(), Resize(), Probe())
}


def kind_named(name: str) -> StepKind:
    """The registered kind ``name`` (how a pickled step finds its kind again)."""
    return KINDS[name]


def defaults_fields(kinds: Mapping[str, StepKind] = KINDS) -> dict[str, Field]:
    """Every key the workflow's ``defaults:`` may set: what any kind takes from there."""
    return {name: spec for kind in kinds.values() for name, spec in kind.defaults.items()}


__all__ = ["KINDS", "StepKind", "defaults_fields", "kind_named"]
