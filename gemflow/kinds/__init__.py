"""Step kinds, registered in this one place. Adding a kind: write its module, add it here."""

from gemflow.kinds.base import StepKind
from gemflow.kinds.composite import Composite
from gemflow.kinds.edit import Edit
from gemflow.kinds.generate import Generate
from gemflow.kinds.probe import Probe
from gemflow.kinds.resize import Resize

KINDS: dict[str, StepKind] = {
    kind.name: kind for kind in (Generate(), Edit(), Composite(), Resize(), Probe())
}

__all__ = ["KINDS", "StepKind"]
