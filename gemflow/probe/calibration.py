"""The probe's calibration: its verdicts on a matrix of emulated services, as a confusion matrix.

Each behaviour is a set of the emulator's rewrite modes (``gemflow.emulator.rewrite``) standing for
a kind of real service, with the verdicts the probe may give it. The probe is run against each
behaviour with several prompts under test, through the real google-genai client and a real
emulator on loopback, exactly as a probe step sends its calls (``gemflow.probe.method.battery``).
``tests/test_probe_calibration.py`` asserts the matrix; ``bench/probe_matrix.py`` prints a bigger
one, whose figures are in the README.

A false positive is "rewritten" for a faithful service; a false negative is "verbatim" for one that
rewrites; "inconclusive" is allowed only where a behaviour says so (a model that refuses, or
misreadings beyond the noisy mode's). Known limits are run and shown, but not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gemflow.probe.method import Outcome
from gemflow.probe.verdict import VERDICTS

if TYPE_CHECKING:
    from gemflow.emulator.rewrite import Rewriter
    from gemflow.providers.connection import Connection

MODEL = "gemini-3.1-flash-image"
SCALE = 1 / 16  # small pictures: the text drawn is what matters, not its pixels


@dataclass(frozen=True)
class Behaviour:
    """A kind of service: its label in the matrix, its emulator modes, and what the probe may say."""

    label: str
    modes: str | None  # rewrite modes; None: the plain emulator
    description: str
    allowed: frozenset[str]
    noise: float | None = None  # the noisy mode's rate (per side), if not its default
    limit: str = ""  # why the probe cannot be right here: a known limit, not counted

    @property
    def truth(self) -> str:
        """What the service does: "rewritten" if the model receives anything but the prompt as
        sent (any of the emulator's rewrite modes), else "verbatim"."""
        from gemflow.emulator.rewrite import REWRITE_MODES

        modes = (self.modes or "").split(",")
        return "rewritten" if set(modes) & set(REWRITE_MODES) else "verbatim"

    def rewriter(self) -> Rewriter | None:
        """The emulator's rewriter for this behaviour."""
        from gemflow.emulator.rewrite import Rewriter

        if self.modes is None:
            return None
        rewriter = Rewriter.parse(self.modes)
        return rewriter if self.noise is None else replace(rewriter, noise=self.noise)


def _behaviour(
    label: str, modes: str | None, description: str, *allowed: str, **more: Any
) -> Behaviour:
    return Behaviour(label, modes, description, frozenset(allowed), **more)


# The matrix: a-h, with d in two variants.
BEHAVIOURS = (
    _behaviour("a", "literal", "faithful, letters the whole prompt", "verbatim"),
    _behaviour("b", None, "faithful, letters what is asked", "verbatim"),
    _behaviour("c", "system", "hidden system prompt", "rewritten"),
    _behaviour("d1", "paraphrase", "paraphraser, loses the canary", "rewritten"),
    _behaviour("d2", "reword", "paraphraser, keeps the canary", "rewritten"),
    _behaviour("e", "expand", "expander (style words appended)", "rewritten"),
    _behaviour("f", "noisy", "faithful, ~5% of characters misread", "verbatim"),
    _behaviour("g", "refuse", "faithful, refuses some probes", "verbatim", "inconclusive"),
    _behaviour("h", "invent", "faithful, invents text before/after", "verbatim"),
)
# Combinations real services have too: the probe must be right on them as well.
COMBINATIONS = (
    _behaviour("p", "prefix", "preamble glued in front", "rewritten"),
    _behaviour("c+a", "literal,system", "hidden system prompt, whole prompt lettered", "rewritten"),
    _behaviour("p+a", "literal,prefix", "preamble, whole prompt lettered", "rewritten"),
    _behaviour("d1+a", "literal,paraphrase", "paraphraser, whole prompt lettered", "rewritten"),
    _behaviour("e+a", "expand,literal", "expander, whole prompt lettered", "rewritten"),
    _behaviour("c+f", "noisy,system", "hidden system prompt, misreadings", "rewritten"),
    _behaviour("d2+f", "noisy,reword", "paraphraser keeping the canary, misreadings", "rewritten"),
    _behaviour("e+f", "expand,noisy", "expander, misreadings", "rewritten"),
    _behaviour("a+f", "literal,noisy", "faithful, whole prompt lettered, misreadings", "verbatim"),
    _behaviour("h+f", "invent,noisy", "faithful, invents, misreadings", "verbatim"),
    _behaviour("d1+h", "invent,paraphrase", "paraphraser, model invents", "rewritten"),
    _behaviour("d1+g", "paraphrase,refuse", "paraphraser, model refuses some probes",
               "rewritten", "inconclusive"),
)  # fmt: skip
# More misreadings than the noisy mode's ~5%: the probe may fall back to inconclusive, but must
# never call a faithful service rewritten, nor an expander verbatim.
NOISE_SWEEP = tuple(
    _behaviour(f"{label}@{2 * rate:.0%}", modes, f"{what}, ~{2 * rate:.0%} misread", *allowed,
               noise=rate)
    for rate in (0.05, 0.075, 0.1, 0.15)
    for label, modes, what, allowed in (
        ("f", "noisy", "faithful", ("verbatim", "inconclusive")),
        ("e+f", "expand,noisy", "expander", ("rewritten", "inconclusive")),
    )
)  # fmt: skip
# Services the probe cannot see through, shown for what it says about them (not counted).
LIMITS = (
    _behaviour("c+g", "refuse,system", "hidden system prompt the model refuses to show",
               *VERDICTS, limit="the only probe that can show a hidden prompt is refused"),
    _behaviour("c+h", "invent,system", "hidden system prompt, model invents text after",
               *VERDICTS, limit="the control's invented text discounts what 'before' showed"),
)  # fmt: skip


PROMPTS = (
    "A kitten with prominent purple-and-green fur.",
    "A red bicycle leaning against a blue door.",
    "A lighthouse on a rocky coast at dusk, with large waves below.",
    # Shares words with the probe's own instruction: they must not be taken for its echo.
    "A minimalist poster of letter magnets on a white fridge door.",
    "An astronaut reading a newspaper in a busy cafe.",
    "Watercolor map of an island shaped like a whale, in soft blue tones.",
)


@dataclass(frozen=True)
class Trial:
    """The probe run once against one behaviour with one prompt under test."""

    behaviour: Behaviour
    prompt: str
    outcome: Outcome

    @property
    def verdict(self) -> str:
        return self.outcome.verdict.verdict

    @property
    def ok(self) -> bool:
        return self.verdict in self.behaviour.allowed

    @property
    def samples_agree(self) -> bool:
        return len({s.verdict.verdict for s in self.outcome.samples}) == 1


@dataclass
class Matrix:
    """Every trial, and the confusion matrix they make."""

    trials: list[Trial] = field(default_factory=list)

    @property
    def behaviours(self) -> list[Behaviour]:
        return list(dict.fromkeys(t.behaviour for t in self.trials))

    @property
    def counted(self) -> list[Trial]:
        """The trials that count: not those of a known limit."""
        return [t for t in self.trials if not t.behaviour.limit]

    @property
    def false_positives(self) -> list[Trial]:
        """ "rewritten" for a service that passes prompts through."""
        return [
            t for t in self.counted if t.behaviour.truth == "verbatim" and t.verdict == "rewritten"
        ]

    @property
    def false_negatives(self) -> list[Trial]:
        """ "verbatim" for a service that rewrites."""
        return [
            t for t in self.counted if t.behaviour.truth == "rewritten" and t.verdict == "verbatim"
        ]

    @property
    def wrong(self) -> list[Trial]:
        """Every verdict the behaviour does not allow: false positives and negatives, and
        "inconclusive" where it is not allowed."""
        return [t for t in self.counted if not t.ok]

    def confusion(self) -> dict[str, Counter[str]]:
        """Verdicts by what the service really does (known limits left out)."""
        found: dict[str, Counter[str]] = {"rewritten": Counter(), "verbatim": Counter()}
        for trial in self.counted:
            found[trial.behaviour.truth][trial.verdict] += 1
        return found

    def table(self) -> str:
        """A row per behaviour, a column per verdict, in Markdown."""
        rows = [
            "| behaviour | modes | truth | rewritten | verbatim | inconclusive | samples agree "
            "| mean confidence |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for b in self.behaviours:
            trials = [t for t in self.trials if t.behaviour == b]
            counts = Counter(t.verdict for t in trials)
            cells = [_cell(counts[v], v, b) for v in VERDICTS]
            agree = sum(t.samples_agree for t in trials)
            mean = sum(t.outcome.verdict.confidence for t in trials) / len(trials)
            rows.append(
                f"| {b.label}: {b.description} | `{b.modes or '(none)'}` | {b.truth} "
                f"| {' | '.join(cells)} | {agree}/{len(trials)} | {mean:.2f} |"
            )
        return "\n".join(rows)

    def confusion_table(self) -> str:
        """The confusion matrix in Markdown: what the service does, by the verdict given."""
        rows = ["| service | rewritten | verbatim | inconclusive |", "|---|---|---|---|"]
        for truth, counts in self.confusion().items():
            cells = " | ".join(str(counts[v]) for v in VERDICTS)
            rows.append(f"| {'rewrites' if truth == 'rewritten' else 'faithful'} | {cells} |")
        return "\n".join(rows)


def _cell(count: int, verdict: str, behaviour: Behaviour) -> str:
    """A count, marked ``!`` when the behaviour does not allow the verdict."""
    return f"{count}!" if count and verdict not in behaviour.allowed else str(count)


def calibrate(
    behaviours: Iterable[Behaviour] = BEHAVIOURS,
    prompts: Sequence[str] = PROMPTS[:3],
    *,
    repeat: int = 3,
    scale: float = SCALE,
    jobs: int = 4,
) -> Matrix:
    """Probe each behaviour with each prompt (``repeat`` samples each), on one emulator per
    behaviour, through the real client; behaviours run ``jobs`` at a time. Deterministic: each
    behaviour's calls go one after another, so the same arguments give the same matrix."""
    from concurrent.futures import ThreadPoolExecutor

    def run(behaviour: Behaviour) -> list[Trial]:
        return _trials(behaviour, prompts, repeat=repeat, scale=scale)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return Matrix([trial for trials in pool.map(run, behaviours) for trial in trials])


def _trials(
    behaviour: Behaviour, prompts: Sequence[str], *, repeat: int, scale: float
) -> list[Trial]:
    from gemflow.emulator import Emulator
    from gemflow.providers.connection import Connection

    with (
        Emulator(scale=scale, rewrite=behaviour.rewriter()) as emulator,
        Connection.emulator(url=emulator.url, rewrite=behaviour.modes, retries=0) as connection,
    ):
        return [
            Trial(behaviour, prompt, probe(connection, prompt, repeat=repeat)) for prompt in prompts
        ]


def probe(connection: Connection, prompt: str, *, repeat: int = 3, model: str = MODEL) -> Outcome:
    """Run the probe battery once, as a probe step would, sending every call through
    ``connection``; nothing is cached."""
    from gemflow.kinds.probe import Probe
    from gemflow.models import default_reader
    from gemflow.probe.method import battery
    from gemflow.probe.reading import ModelReader

    plan = Probe().plan({"model": model, "prompt": prompt, "repeat": repeat})
    exchange = battery(plan, ModelReader(default_reader()))
    calls = next(exchange)
    while True:
        answers = [connection.provider(c.request.model).send(c.request).response for c in calls]
        try:
            calls = exchange.send(answers)
        except StopIteration as done:
            return done.value
