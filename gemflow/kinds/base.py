"""What a step kind is: the keys it accepts, the inputs it references, its recipe and how it runs.

A kind is one small module with one ``StepKind`` subclass, registered in ``gemflow.kinds``. The loader
validates a step's keys against ``fields`` (types, required, choices, typos) and then asks the kind's
``check`` for anything more particular; the key builder asks ``recipe``; the runner calls ``run``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from gemflow.providers.base import ApiRequest, ApiResponse
    from gemflow.workflow import Step

IMAGE_FORMATS = ("png", "webp", "jpeg")
FORMAT_BY_SUFFIX = {
    ".png": "png",
    ".webp": "webp",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".json": "json",
}
EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg", "json": ".json"}


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
    default: Any = None  # what an unset key means: writing it out must not change the key
    doc: str = ""


@dataclass
class StepOutput:
    """What a step produced: the output file's exact bytes and JSON-able metadata.

    ``attachments`` are further files written beside the output (names relative to the output's
    folder, e.g. ``check.probe/sheet.png``); they are stored, restored and locked with it.
    ``summary`` is a small JSON-able result shown in ``--json`` output (a probe's verdict, say).
    """

    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    api_calls: int = 0
    attachments: dict[str, bytes] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    usd: float = 0.0  # what the requests this step sent cost, by the model table


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
        calls: CallCache | None = None,
    ) -> None:
        self._provider_factory = provider_factory
        self.notify = notify  # tell the user something now (a long wait, say); thread-safe
        self._calls = calls
        self.api_calls = 0  # requests this step sent through ``call``
        self.usd = 0.0  # and what they cost

    def provider(self) -> Any:
        if self._provider_factory is None:
            raise RuntimeError("this run has no API provider")
        return self._provider_factory()

    def call(
        self,
        request: ApiRequest,
        *,
        sample: int = 0,
        retries: int | None = None,
        rpm: float | None = None,
    ) -> ApiResponse:
        """Send ``request`` unless an answer to it (the same request, the same sample number) is
        cached. For steps that make several calls: each is cached on its own, so asking for more
        samples pays only for the new ones. Transient failures are retried (``retries``, ``rpm``:
        the step's settings)."""
        from gemflow.errors import GemflowError
        from gemflow.models import spent
        from gemflow.providers.resilient import attempts_of, resilient, with_attempts

        if self._calls is not None:
            cached = self._calls.get(request, sample)
            if cached is not None:
                return cached
        try:
            sent = resilient(self.provider()).send(
                request, retries=retries, rpm=rpm, notify=self.notify
            )
        except GemflowError as error:  # the step fails: report every request it sent, not one
            self.api_calls += attempts_of(error)
            raise with_attempts(error, self.api_calls) from None
        response = sent.response
        self.api_calls += sent.attempts
        self.usd += spent(request, response.usage)
        if self._calls is not None:
            self._calls.put(request, sample, response)
        return response


class CallCache(Protocol):
    """Answers to single API calls, by request and sample number (see ``RunContext.call``)."""

    def get(self, request: ApiRequest, sample: int) -> ApiResponse | None: ...

    def put(self, request: ApiRequest, sample: int, response: ApiResponse) -> None: ...


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

    def default_output(self, step_id: str, fmt: str) -> str:
        """Where the output goes when the step does not say, relative to the workflow's folder."""
        return f"out/{step_id}{EXTENSIONS[fmt]}"

    def output_format(self, params: Mapping[str, Any], suffix: str | None) -> str:
        """The output file's format: from ``format``, else the output suffix, else png."""
        by_suffix = FORMAT_BY_SUFFIX.get(suffix or "")
        return params.get("format") or (by_suffix if by_suffix in IMAGE_FORMATS else "png")

    def recipe(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters that can change the result: everything marked ``in_key``, with defaults
        filled in (so ``gap: 0`` and no ``gap`` make one key); unset ones without a default are
        left out."""
        recipe = {}
        for name, spec in self.fields.items():
            if not spec.in_key or name in self.reference_fields:
                continue
            value = params.get(name)
            value = spec.default if value is None else value
            if value is not None:
                recipe[name] = value
        return recipe

    def estimate(self, step: Step) -> Estimate:
        """API calls and USD that running ``step`` once would cost."""
        return Estimate()

    def run(self, step: Step, inputs: Sequence[InputImage], ctx: RunContext) -> StepOutput:
        raise NotImplementedError
