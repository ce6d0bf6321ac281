"""What a step kind is: the keys it accepts, the inputs it references, its recipe and how it runs.

A kind is one small module with one ``StepKind`` subclass, registered in ``gemflow.kinds``. The loader
validates a step's keys against ``fields`` (types, required, choices, typos) and then asks the kind's
``check`` for anything more particular; the key builder asks ``recipe``; the runner calls ``run``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from gemflow.errors import ApiError, StepError
from gemflow.providers.base import SendSettings

if TYPE_CHECKING:
    from gemflow.providers.base import ApiRequest, ApiResponse
    from gemflow.providers.connection import Connection
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
    number (int or float, loaded as float so 1 and 1.0 make one key); bool; ref (one step id or
    file); refs (a non-empty list of them); list (checked by the kind); text_or_json (text, or a
    mapping or list sent as JSON text: a structured prompt); file (a text file beside the
    workflow whose text, vars substituted, becomes the parameter named by ``fills``).
    """

    type: str
    required: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    in_key: bool = True  # False: cannot change the picture (e.g. a description), so not in the key
    default: Any = None  # what an unset key means: writing it out must not change the key
    on_step: bool = True  # False: only the workflow's defaults may set it (a run-wide setting)
    fills: str | None = None  # a file field: the parameter its text becomes
    doc: str = ""


# How to send, not what: none of these can change the picture, so none is in the key. Every kind
# that sends takes them, on the step or from the workflow's defaults. Defaults and limits:
# gemflow/providers/resilient.py and gemflow/providers/base.py.
SEND_FIELDS: Mapping[str, Field] = {
    "retries": Field(
        "int", minimum=0, maximum=20, in_key=False, doc="retries after a 429, 5xx or timeout (5)"
    ),
    "timeout": Field(
        "number",
        minimum=0.1,
        maximum=3600,
        in_key=False,
        doc="seconds to wait for a whole answer (180)",
    ),
    "rpm": Field(
        "number",
        minimum=0.1,
        in_key=False,
        on_step=False,
        doc="requests per minute to a model, for the whole run (in defaults only)",
    ),
}


@dataclass
class StepOutput:
    """What a step produced: the output file's exact bytes and JSON-able metadata.

    ``attachments`` are further files written beside the output (names relative to the output's
    folder, e.g. ``check.probe/sheet.png``); they are stored, restored and locked with it.
    ``summary`` is a small JSON-able result shown in ``--json`` output (a probe's verdict, say).
    What the step's requests cost is counted by the ``RunContext`` that sent them.
    """

    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, bytes] = field(default_factory=dict)
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class InputImage:
    """One resolved input, in the order written: where it came from and its exact bytes."""

    ref: str
    data: bytes


@dataclass(frozen=True)
class Call:
    """One request a step wants answered.

    ``sample`` set: the answer is cached on its own, as that sample of the request (for steps that
    make several calls, so a rerun or more samples pay only for what is new). None: the step's
    result is what is cached.
    """

    request: ApiRequest
    sample: int | None = None


# An API kind's work as data: it yields the calls it needs (all it can know of at that point),
# receives their answers in the same order, and returns its output. The thread-pool runner answers
# each batch of calls as it comes; another executor may gather the calls of many steps first.
Exchange = Generator[list[Call], list["ApiResponse"], StepOutput]


class RunContext:
    """What a running step may use, and the one way any step sends a request (``send``).

    Every request goes with the step's ``settings`` (retries, rate limit, timeout), and is counted
    here once: requests sent (retries included), tokens and cost. Providers come from
    ``connection``, made on first use (that imports the SDK).
    """

    def __init__(
        self,
        connection: Connection | None = None,
        *,
        settings: SendSettings | None = None,
        calls: CallCache | None = None,
        notify: Callable[[str], None] = lambda message: None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self._connection = connection
        self._cancelled = cancelled
        self._settings = settings
        self._calls = calls
        self.notify = notify  # tell the user something now (a long wait, say); thread-safe
        self.api_calls = 0  # requests sent, retries included
        self.usd = 0.0  # what they cost, by the model table
        self.tokens: dict[str, int] = {}  # the usage the API reported for them
        self.model_version: str | None = None  # of the first image answer

    def send(self, call: Call) -> ApiResponse:
        """The answer to ``call``: from the per-call cache when ``call.sample`` is set and it holds
        one, else sent now. Transient failures are retried as the step's settings say; an error
        is raised after counting every request it took."""
        response = self.recall(call)
        if response is None:
            response = self._send(call.request)
            self.take(call, response, sent=0)  # _send counted its requests
        return response

    def recall(self, call: Call) -> ApiResponse | None:
        """The answer the per-call cache holds for ``call`` (only calls with a sample number)."""
        if call.sample is None or self._calls is None:
            return None
        response = self._calls.get(call.request, call.sample)
        if response is not None:
            self._note(call.request, response)
        return response

    def take(self, call: Call, response: ApiResponse, *, sent: int = 1, price: float = 1.0) -> None:
        """Count and keep an answer to ``call`` obtained by the sender: ``sent`` requests, priced
        at ``price`` times the table's (0.5: the Batch API's half price)."""
        if sent:
            self.api_calls += sent
            self._count(call.request, response, price)
        if call.sample is not None and self._calls is not None:
            self._calls.put(call.request, call.sample, response)
        self._note(call.request, response)

    def _note(self, request: ApiRequest, response: ApiResponse) -> None:
        if "IMAGE" in request.modalities and self.model_version is None:
            self.model_version = response.model_version

    def _count(self, request: ApiRequest, response: ApiResponse, price: float) -> None:
        from gemflow.models import spent

        self.usd += price * spent(request, response.usage)
        for name, count in response.usage.items():
            self.tokens[name] = self.tokens.get(name, 0) + count

    def _send(self, request: ApiRequest) -> ApiResponse:
        from gemflow.providers.resilient import attempts_of

        if self._connection is None:
            raise StepError("this run has no connection to an API")
        settings = self._settings or SendSettings()
        try:
            sent = self._connection.provider(request.model).send(
                request,
                retries=settings.retries,
                rpm=settings.rpm,
                timeout=settings.timeout,
                notify=self.notify,
                cancelled=self._cancelled,
            )
        except ApiError as error:  # sent, perhaps several times (no key: nothing was sent)
            self.api_calls += attempts_of(error)
            raise
        self.api_calls += sent.attempts
        self._count(request, sent.response, 1.0)
        return sent.response


class CallCache(Protocol):
    """Answers to single API calls, by request and sample number (see ``Call``)."""

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
    # Whether running the same step again can give another result (a model drawing anew): only
    # such a kind takes ``variants`` and re-rolls.
    varies: ClassVar[bool] = False
    # The kind's identity in the cache key; kinds that would send the same request share one.
    key_kind: ClassVar[str | None] = None
    fields: ClassVar[Mapping[str, Field]]
    # The keys of the workflow's ``defaults:`` that this kind takes (each also one of ``fields``,
    # unless it may be set only there, like a run-wide rate limit).
    defaults: ClassVar[Mapping[str, Field]] = {}
    # Parameters whose values reference inputs (step ids or files), in the order inputs are passed.
    reference_fields: ClassVar[Sequence[str]] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        """A kind is one registered object: pickled by its name (``gemflow.workflow.plan``)."""
        from gemflow.kinds import kind_named

        return kind_named, (self.name,)

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

    def resolve(self, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The step's parameters with the workflow's defaults that this kind takes filled in."""
        taken = {key: value for key, value in defaults.items() if key in self.defaults}
        return {**taken, **params}

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


class ApiKind(StepKind):
    """A kind whose steps send requests. It says which, as data (``exchange``); ``run`` answers
    them through the context, the one way to send."""

    uses_api: ClassVar[bool] = True

    def exchange(self, step: Step, inputs: Sequence[InputImage]) -> Exchange:
        raise NotImplementedError

    def run(self, step: Step, inputs: Sequence[InputImage], ctx: RunContext) -> StepOutput:
        exchange = self.exchange(step, inputs)
        try:
            calls = next(exchange)
            while True:
                calls = exchange.send([ctx.send(call) for call in calls])
        except StopIteration as done:
            output: StepOutput = done.value
            return output
