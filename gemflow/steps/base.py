"""What a step kind is: the keys it accepts, the inputs it references, its recipe and how it runs.

A kind is one small module with one ``StepKind`` subclass, registered in ``gemflow.steps``. The loader
validates a step's keys against ``fields`` (types, required, choices, typos) and then asks the kind's
``check`` for anything more particular; the key builder asks ``recipe``; the runner calls ``run``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from gemflow.workflow import Step

IMAGE_FORMATS = ("png", "webp", "jpeg")
FORMAT_BY_SUFFIX = {".png": "png", ".webp": "webp", ".jpg": "jpeg", ".jpeg": "jpeg"}


@dataclass(frozen=True)
class Field:
    """One key a step accepts.

    ``type`` is one of: str; scalar (a str, or a number read as its str: ``image_size: 512``); int;
    number (int or float, loaded as float so 1 and 1.0 make one key); ref (one step id or file);
    refs (a non-empty list of them); list (checked by the kind).
    """

    type: str
    required: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    in_key: bool = True  # False: cannot change the picture (e.g. a description), so not in the key
    doc: str = ""


@dataclass
class StepOutput:
    """What a step produced: the output file's exact bytes and JSON-able metadata."""

    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    api_calls: int = 0


@dataclass(frozen=True)
class InputImage:
    """One resolved input, in the order written: where it came from and its exact bytes."""

    ref: str
    data: bytes


class RunContext:
    """What a running step may use. The provider is created on first use (it imports google-genai)."""

    def __init__(
        self,
        provider_factory: Callable[[], Any] | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self._provider_factory = provider_factory
        self.notify = notify  # tell the user something now (a long wait, say); thread-safe

    def provider(self) -> Any:
        if self._provider_factory is None:
            raise RuntimeError("this run has no API provider")
        return self._provider_factory()


@dataclass(frozen=True)
class Estimate:
    api_calls: int = 0
    usd: float = 0.0


class StepKind:
    """Base of every step kind. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    recipe_version: ClassVar[int] = 1
    uses_api: ClassVar[bool] = False
    # The kind's identity in the cache key; kinds that would send the same request share one.
    key_kind: ClassVar[str | None] = None
    fields: ClassVar[Mapping[str, Field]]
    # Parameters whose values reference inputs (step ids or files), in the order inputs are passed.
    reference_fields: ClassVar[Sequence[str]] = ()

    def references(self, params: Mapping[str, Any]) -> list[str]:
        """Every input reference in ``params``, in order. Override for nested references."""
        refs: list[str] = []
        for name in self.reference_fields:
            value = params.get(name)
            if isinstance(value, str):
                refs.append(value)
            elif isinstance(value, list):
                refs.extend(v for v in value if isinstance(v, str))
        return refs

    def check(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        """Problems beyond per-field types, as (key or None, message) pairs."""
        return []

    def warnings(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        """Things worth saying that do not stop the run, as (key or None, message) pairs."""
        return []

    def output_format(self, params: Mapping[str, Any], suffix: str | None) -> str:
        """The output file's format: from ``format``, else the output suffix, else png."""
        return params.get("format") or FORMAT_BY_SUFFIX.get(suffix or "", "png")

    def recipe(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters that can change the result: everything marked ``in_key`` and set."""
        return {
            name: params[name]
            for name, spec in self.fields.items()
            if spec.in_key and name not in self.reference_fields and params.get(name) is not None
        }

    def estimate(self, step: Step) -> Estimate:
        """API calls and USD that running ``step`` once would cost."""
        return Estimate()

    def run(self, step: Step, inputs: Sequence[InputImage], ctx: RunContext) -> StepOutput:
        raise NotImplementedError
