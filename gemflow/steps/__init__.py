"""Step kinds, registered in this one place. Adding a kind: write its module, add it here."""

from gemflow.steps.base import StepKind
from gemflow.steps.composite import Composite
from gemflow.steps.edit import Edit
from gemflow.steps.generate import Generate
from gemflow.steps.probe import Probe
from gemflow.steps.resize import Resize

KINDS: dict[str, StepKind] = {
    kind.name: kind for kind in (Generate(), Edit(), Composite(), Resize(), Probe())
}

__all__ = ["KINDS", "StepKind"]
