"""Load a workflow file: parse, validate everything, and report every problem at once.

The result is a ``Workflow`` of immutable ``Step`` records with vars substituted, defaults applied,
references resolved to steps or files, and output paths decided. Nothing here touches the network
or the cache.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gemflow.engine.graph import find_cycles
from gemflow.errors import Problem, WorkflowError
from gemflow.kinds import KINDS, defaults_fields
from gemflow.kinds.base import FORMAT_BY_SUFFIX, IMAGE_FORMATS, Field, StepKind
from gemflow.workflow import MAX_WORKFLOW_BYTES, Ref, Step, Workflow
from gemflow.workflow.disk import Disk, read_regular_file
from gemflow.workflow.instances import (
    FORBIDDEN,
    MAX_INSTANCES,
    VARIANT,
    Instance,
    count,
    expand,
    parse_selector,
    select,
)
from gemflow.workflow.vars import (
    VAR_NAME,
    Expander,
    TooLarge,
    TooMuch,
    UnknownVar,
    resolve_vars,
)
from gemflow.workflow.yamlsafe import LineDict, LineList, YamlError, load_yaml

SUPPORTED_VERSIONS = (1,)
TOP_LEVEL_KEYS = ("version", "defaults", "vars", "steps")
STEP_KEYS = ("kind", "output", "matrix", "variants")  # accepted by every kind, besides its fields
MAX_VARIANTS = 1000
STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_T = TypeVar("_T")
_R = TypeVar("_R")
# Keys of ``defaults`` that are about the run, not any step: kept in ``Workflow.settings``.
RUN_SETTINGS = {
    "remote": Field("str", in_key=False, on_step=False, doc="the team cache: s3://… or gs://…"),
    "push": Field("bool", in_key=False, on_step=False, doc="write new results to the remote"),
    # --batch (gemflow.engine.batch.Limits); the command line's --batch-* options override them
    "batch_min": Field(
        "int",
        minimum=1,
        maximum=100_000,
        in_key=False,
        on_step=False,
        doc="--batch=auto: a model's requests in a round are batched when there are this many (20)",
    ),
    "batch_max_requests": Field(
        "int",
        minimum=1,
        maximum=1_000_000,
        in_key=False,
        on_step=False,
        doc="requests in one batch job at most (2000)",
    ),
    "batch_max_mb": Field(
        "number",
        minimum=0.001,
        maximum=2000,
        in_key=False,
        on_step=False,
        doc="megabytes of requests (its JSONL file) in one batch job at most (500)",
    ),
    "batch_max_tokens": Field(
        "int",
        minimum=1,
        in_key=False,
        on_step=False,
        doc="estimated tokens, in and out, in one batch job at most (5,000,000)",
    ),
}


def load_workflow(path: str | os.PathLike[str], *, allow_outside: bool = False) -> Workflow:
    """Load and validate ``path``; raise ``WorkflowError`` listing every problem found. (A run
    reads it back from its last plan when it can: ``gemflow.workflow.plan``.)"""
    return _Loader(Path(path), allow_outside=allow_outside).load()


@dataclass(frozen=True)
class Checked:
    """What loading a workflow found: the workflow (None when invalid), problems and warnings."""

    workflow: Workflow | None
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]


def check_workflow(path: str | os.PathLike[str], *, allow_outside: bool = False) -> Checked:
    """Load ``path`` and keep everything found, the warnings of an invalid workflow too."""
    loader = _Loader(Path(path), allow_outside=allow_outside)
    try:
        workflow = loader.load()
    except WorkflowError as exc:
        return Checked(None, tuple(exc.problems), tuple(loader.warnings))
    return Checked(workflow, (), workflow.warnings)


def suggest(word: str, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for a near match, else ''."""
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _Loader:
    def __init__(
        self,
        path: Path,
        *,
        allow_outside: bool,
        disk: Disk | None = None,
        data: bytes | None = None,
    ) -> None:
        self.disk = disk or Disk()  # every question about other files goes here (recorded)
        self.data = data  # the workflow file's bytes, when the caller has read them
        self.path = path.absolute()
        self.root = self.path.parent
        self.real_root = self.disk.realpath(str(self.root))
        self.real_folders: dict[str, str] = {}
        self.file = display_path(path)
        self.allow_outside = allow_outside
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.text_files: dict[Path, str] = {}  # prompt files, read once however many instances
        self.expand = Expander()  # vars substituted, within bounds (see gemflow.workflow.vars)
        self.bad_vars: set[str] = set()  # vars with problems of their own, reported there

    # -- reporting ------------------------------------------------------------------------------

    def problem(self, line: int | None, message: str, step: str | None = None) -> None:
        self.problems.append(Problem(self.file, line, step, message))

    def warn(self, line: int | None, message: str, step: str | None = None) -> None:
        self.warnings.append(Problem(self.file, line, step, message))

    def fail(self) -> WorkflowError:
        return WorkflowError(self.problems)

    def stop(self, line: int | None, step: str | None, exc: TooMuch) -> _Stopped:
        """Too much text to go on: one problem, and nothing more is loaded."""
        message = f"{exc}: the workflow is not loaded further"
        return _Stopped(Problem(self.file, line, step, message))

    def var_problem(self, exc: UnknownVar | TooLarge) -> str:
        """What is wrong with the vars of a value, to follow its key: ": unknown var '${x}'"."""
        if isinstance(exc, TooLarge):
            return f" {exc}"
        if exc.name in self.bad_vars:
            return f": uses var '{exc.name}', which has an error"
        return f": unknown var '${{{exc.name}}}'"

    # -- top level ------------------------------------------------------------------------------

    def load(self) -> Workflow:
        try:
            return self.load_document()
        except _Stopped as stopped:
            self.problems.append(stopped.problem)
            raise self.fail() from None

    def load_document(self) -> Workflow:
        self.check_lock_path()
        doc = self.parse()
        if not isinstance(doc, LineDict):
            self.problem(
                1, "a workflow is a mapping with 'version', 'defaults', 'vars' and 'steps'"
            )
            raise self.fail()
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                self.problem(
                    doc.line_of(key), f"unknown key '{key}'{suggest(str(key), TOP_LEVEL_KEYS)}"
                )
        version = doc.get("version", 1)
        if version not in SUPPORTED_VERSIONS:
            self.problem(
                doc.line_of("version"), f"unsupported version {version!r} (this gemflow reads 1)"
            )
        variables = self.load_vars(doc.get("vars"), doc.line_of("vars"))
        defaults = self.load_defaults(doc.get("defaults"), doc.line_of("defaults"), variables)
        settings = {key: defaults.pop(key) for key in RUN_SETTINGS if key in defaults}
        self.check_remote(settings.get("remote"), doc.get("defaults"))
        steps_doc = doc.get("steps")
        if not isinstance(steps_doc, LineDict) or not steps_doc:
            self.problem(doc.line_of("steps"), "'steps' must be a mapping of step ids to steps")
            raise self.fail()
        steps = self.load_steps(steps_doc, defaults, variables)
        self.check_cycles(steps, steps_doc)
        if self.problems:
            raise self.fail()
        return Workflow(
            path=self.path, steps=steps, warnings=tuple(self.warnings), settings=settings
        )

    def check_lock_path(self) -> None:
        """The lock file goes beside the workflow as ``<name>.lock``: it must not be the workflow
        itself, nor the lock of a sibling (``a.yaml`` and ``a.yml`` would share ``a.lock``)."""
        lock = self.path.with_suffix(".lock")
        if lock == self.path:
            self.problem(
                None,
                "a workflow file named *.lock would be overwritten by its own lock "
                "file: name it .yaml",
            )
            raise self.fail()
        for suffix in (".yaml", ".yml"):
            twin = self.path.with_suffix(suffix)
            if twin != self.path and self.disk.exists(str(twin)):
                self.problem(
                    None,
                    f"{self.path.name} and {twin.name} would share {lock.name}: rename one of them",
                )
                raise self.fail()

    def parse(self) -> Any:
        text = self.read_text()
        try:
            doc, duplicates = load_yaml(text)
        except YamlError as exc:
            self.problem(exc.line, str(exc))
            raise self.fail() from None
        if doc is None and not text.strip():
            self.problem(None, "the file is empty: a workflow is a mapping with 'steps'")
            raise self.fail()
        steps_doc = doc.get("steps") if isinstance(doc, LineDict) else None
        for key, line, first in duplicates:
            is_step = isinstance(steps_doc, LineDict) and steps_doc.key_lines.get(key) == line
            what = "step id" if is_step else "key"
            self.problem(
                line,
                f"duplicate {what} '{key}' (first at line {first}); YAML would keep "
                "only the last silently",
            )
        return doc

    def read_text(self) -> str:
        """The workflow's text: UTF-8, with or without a byte-order mark."""
        data = self.read_bytes()
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                self.problem(None, "the file is UTF-16 text: save it as UTF-8")
            else:
                line = data.count(b"\n", 0, exc.start) + 1
                byte = data[exc.start]
                self.problem(line, f"not UTF-8 text (byte 0x{byte:02x}): save it as UTF-8")
            raise self.fail() from None

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        try:
            data, _ = read_regular_file(self.path, MAX_WORKFLOW_BYTES + 1)
        except FileNotFoundError:
            message = "no such workflow file"
        except OSError as exc:
            message = f"cannot read: {exc.strerror or exc}"
        else:
            if len(data) <= MAX_WORKFLOW_BYTES:
                return data
            message = f"the file is over {MAX_WORKFLOW_BYTES:,} bytes, the most a workflow may be"
        self.problem(None, message)
        raise self.fail()

    def load_vars(self, raw: Any, line: int) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, LineDict):
            self.problem(line, "'vars' must be a mapping of names to text")
            return {}
        texts: dict[str, str] = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not VAR_NAME.match(name):
                self.problem(raw.line_of(name), f"var name {name!r} must be letters, digits and _")
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                texts[name] = str(value)
            else:
                self.problem(raw.line_of(name), f"var '{name}' must be text or a number")
        try:
            resolved, errors = resolve_vars(texts, self.expand)
        except TooMuch as exc:
            raise self.stop(line, None, exc) from None
        self.bad_vars = set(errors)
        for name, message in errors.items():
            self.problem(raw.line_of(name), f"var '{name}': {message}")
        return resolved

    def load_defaults(self, raw: Any, line: int, variables: Mapping[str, str]) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, LineDict):
            self.problem(line, "'defaults' must be a mapping")
            return {}
        defaults = {}
        accepted = {**defaults_fields(), **RUN_SETTINGS}
        for key, value in raw.items():
            spec = accepted.get(key)
            if spec is None:
                self.problem(
                    raw.line_of(key),
                    f"defaults: unknown key '{key}'{suggest(str(key), accepted)}",
                )
                continue
            ok, converted = self.convert(
                value, spec, variables, raw.line_of(key), None, f"defaults.{key}"
            )
            if ok:
                defaults[key] = converted
        return defaults

    def check_remote(self, url: str | None, raw: Any) -> None:
        if url is None or url.strip().lower() == "none":
            return
        from gemflow.cache.remote import parse_location  # asyncio and more: only for a remote
        from gemflow.errors import ConfigError

        try:
            parse_location(url)
        except ConfigError as exc:
            self.problem(raw.line_of("remote"), f"defaults.remote: {exc}")

    # -- steps ----------------------------------------------------------------------------------

    def load_steps(
        self, doc: LineDict, defaults: Mapping[str, Any], variables: Mapping[str, str]
    ) -> dict[str, Step]:
        """Every step, checked as far as it can be: a step whose parameters have problems still
        has its references and output checked, so one run of the loader finds them all."""
        parsed: dict[str, list[_Parsed]] = {}
        for step_id, body in doc.items():
            line = doc.line_of(step_id)
            if not isinstance(step_id, str) or not STEP_ID.match(step_id):
                self.problem(
                    line,
                    f"step id {step_id!r} must start with a letter or _ and hold only "
                    "letters, digits, _ and -",
                )
                continue
            if not isinstance(body, LineDict):
                self.problem(line, "a step is a mapping with at least 'kind'", step_id)
                continue
            loaded = self.load_group(step_id, body, defaults, variables)
            if loaded:
                parsed[step_id] = loaded

        groups = {group: [p.instance.name for p in items] for group, items in parsed.items()}
        values = {p.instance.name: dict(p.instance.values) for ps in parsed.values() for p in ps}
        steps: dict[str, Step] = {}
        outputs: dict[Path, str] = {}
        for group, items in parsed.items():
            if len(items) == 1 and not items[0].instance.values:  # the common case, kept fast
                made = [self.resolve_step(items[0], doc, groups, values, outputs)]
            else:
                made = self.each_instance(
                    group,
                    [(item.instance.name, item) for item in items],
                    lambda item: self.resolve_step(item, doc, groups, values, outputs),
                )
            steps.update((step.id, step) for step in made if step is not None)
        self.check_outputs_are_not_inputs(steps)
        self.check_inputs_are_images(steps)
        return steps

    def resolve_step(
        self,
        item: _Parsed,
        doc: LineDict,
        groups: Mapping[str, list[str]],
        values: Mapping[str, Mapping[str, str]],
        outputs: dict[Path, str],
    ) -> Step | None:
        """``item`` as a ``Step``: its references resolved and its output decided."""
        name = item.instance.name
        resolved = self.resolve_refs(item, doc, groups, values)
        output = self.resolve_output(item)
        if resolved is None or output is None:
            return None
        params = self.expand_references(item, resolved)
        if params is None:
            return None
        path, rel, fmt = output
        if path in outputs:
            hint = ""
            if item.instance.values and item.body.get("output") is not None:
                keys = ", ".join(f"${{matrix.{k}}}" for k, _ in item.instance.values)
                hint = f": put {keys} in 'output' so that each instance writes a file of its own"
            self.problem(
                item.body.line_of("output"),
                f"writes {rel}, as step '{outputs[path]}' does{hint}",
                name,
            )
            return None
        outputs[path] = name
        return Step(
            name,
            item.kind,
            params,
            tuple(ref for _, found in resolved for ref in found),
            path,
            rel,
            fmt,
            doc.line_of(item.group),
            group=item.group if item.instance.values else "",
            values=item.instance.values,
            sample=item.instance.sample,
        )

    def load_group(
        self,
        step_id: str,
        body: LineDict,
        defaults: Mapping[str, Any],
        variables: Mapping[str, str],
    ) -> list[_Parsed]:
        """The step's instances, each with its parameters (as far as they are valid); empty when
        the step's kind or its matrix is wrong."""
        kind = self.load_kind(step_id, body)
        if kind is None:
            return []
        plan = self.load_matrix(step_id, kind, body)
        if plan is None:
            return []
        matrix, variants = plan
        instances = expand(
            step_id, [(k, [text for text, _, _ in vs]) for k, vs in matrix], variants
        )
        if len(instances) == 1 and not instances[0].values:
            params, bad = self.load_params(step_id, kind, body, defaults, variables, {})
            return [_Parsed(step_id, kind, params, body, instances[0], variables, bad)]
        raw = {key: {text: (value, line) for text, value, line in vs} for key, vs in matrix}

        def load(instance: Instance) -> _Parsed:
            known = {**variables, **{f"matrix.{k}": v for k, v in instance.values}}
            fields = {k: raw[k][v] for k, v in instance.values if k in raw and k in kind.fields}
            params, bad = self.load_params(instance.name, kind, body, defaults, known, fields)
            return _Parsed(step_id, kind, params, body, instance, known, bad)

        return self.each_instance(step_id, [(i.name, i) for i in instances], load)

    def each_instance(
        self, step_id: str, items: list[tuple[str, _T]], work: Callable[[_T], _R]
    ) -> list[_R]:
        """``work`` on each instance of a step. A problem (or warning) that every instance has is
        reported once, for the step; one that only some have, for each of those instances."""
        if len(items) == 1 and items[0][0] == step_id:
            return [work(items[0][1])]
        outer = self.problems, self.warnings
        found: dict[tuple[int | None, str], list[str]] = {}
        warned: dict[tuple[int | None, str], list[str]] = {}
        results: list[_R] = []
        try:
            for name, item in items:
                self.problems, self.warnings = [], []
                results.append(work(item))
                for reported, into in ((self.problems, found), (self.warnings, warned)):
                    for problem in reported:
                        into.setdefault((problem.line, problem.message), []).append(name)
        finally:
            self.problems, self.warnings = outer
        for into, report in ((found, self.problem), (warned, self.warn)):
            for (line, message), names in into.items():
                for name in [step_id] if len(names) == len(items) else names:
                    report(line, message, name)
        return results

    def load_kind(self, step_id: str, body: LineDict) -> StepKind | None:
        kind_name = body.get("kind")
        if kind_name is None:
            self.problem(body.line, f"missing 'kind' (one of: {', '.join(KINDS)})", step_id)
            return None
        kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            self.problem(
                body.line_of("kind"),
                f"unknown kind {kind_name!r}{suggest(str(kind_name), KINDS)}"
                f" (kinds: {', '.join(KINDS)})",
                step_id,
            )
        return kind

    def load_matrix(
        self, step_id: str, kind: StepKind, body: LineDict
    ) -> tuple[list[tuple[str, list[tuple[str, Any, int]]]], int | None] | None:
        """The step's ``matrix`` (each key with its values as (text, value, line)) and
        ``variants``, checked; None when either is wrong."""
        ok = True
        variants = body.get("variants")
        if variants is not None:
            line = body.line_of("variants")
            if isinstance(variants, bool) or not isinstance(variants, int):
                self.problem(line, "'variants' must be a whole number of samples", step_id)
                ok = False
            elif not 1 <= variants <= MAX_VARIANTS:
                self.problem(line, f"'variants' must be from 1 to {MAX_VARIANTS}", step_id)
                ok = False
            elif not kind.varies:
                self.problem(
                    line,
                    f"a {kind.name} step makes the same result every time: 'variants' needs a "
                    "step that draws anew (generate or edit)"
                    + ("; a probe takes 'repeat'" if kind.name == "probe" else ""),
                    step_id,
                )
                ok = False
        matrix: list[tuple[str, list[tuple[str, Any, int]]]] = []
        raw = body.get("matrix")
        if raw is not None:
            found = self.load_matrix_keys(step_id, kind, body, raw)
            ok = ok and found is not None
            matrix = found or []
        if not ok:
            return None
        total = count([(k, [text for text, _, _ in vs]) for k, vs in matrix], variants)
        if total > MAX_INSTANCES:
            self.problem(
                body.line_of("matrix"),
                f"makes {total:,} instances; a step may make at most {MAX_INSTANCES:,}",
                step_id,
            )
            return None
        return matrix, variants if isinstance(variants, int) else None

    def load_matrix_keys(
        self, step_id: str, kind: StepKind, body: LineDict, raw: Any
    ) -> list[tuple[str, list[tuple[str, Any, int]]]] | None:
        line = body.line_of("matrix")
        if not isinstance(raw, LineDict) or not raw:
            self.problem(line, "'matrix' must map parameters to lists of values", step_id)
            return None
        ok = True
        matrix = []
        for key, values in raw.items():
            where = raw.line_of(key)
            problem = self.matrix_key_problem(key, kind, body)
            if problem is None and (not isinstance(values, LineList) or not values):
                problem = f"matrix: '{key}' must be a list of values"
            if problem is not None:
                self.problem(where, problem, step_id)
                ok = False
                continue
            texts: list[tuple[str, Any, int]] = []
            for index, value in enumerate(values):
                text = _matrix_text(value)
                at = values.line_of(index)
                if text is None:
                    self.problem(at, f"matrix: '{key}' values must be text or numbers", step_id)
                    ok = False
                elif any(c in text for c in FORBIDDEN):
                    self.problem(
                        at, f"matrix value {text!r} may not hold any of {FORBIDDEN}", step_id
                    )
                    ok = False
                elif any(text == seen for seen, _, _ in texts):
                    self.problem(at, f"matrix: '{key}' lists {text!r} twice", step_id)
                    ok = False
                else:
                    texts.append((text, value, at))
            if key not in kind.fields and f"${{matrix.{key}}}" not in _all_text(body):
                self.warn(
                    where,
                    f"matrix key '{key}' is used nowhere in the step (write ${{matrix.{key}}} "
                    "in its prompt): its instances are the same request",
                    step_id,
                )
            matrix.append((key, texts))
        return matrix if ok else None

    def matrix_key_problem(self, key: Any, kind: StepKind, body: LineDict) -> str | None:
        if not isinstance(key, str) or not VAR_NAME.match(key):
            return f"matrix key {key!r} must be letters, digits and _"
        if key in (*STEP_KEYS, VARIANT):
            return f"matrix: '{key}' cannot vary" + (" (use 'variants')" if key == VARIANT else "")
        if key in kind.reference_fields:
            return f"matrix: '{key}' cannot vary: list the inputs on the step"
        spec = kind.fields.get(key)
        if spec is not None and not spec.on_step:
            return f"matrix: '{key}' is a setting for the whole run and cannot vary"
        if spec is not None and not spec.in_key:
            return f"matrix: '{key}' cannot change the picture, so it cannot vary"
        if key in body:
            return f"'{key}' is set on the step and in its matrix: keep one"
        return None

    def load_params(
        self,
        step_id: str,
        kind: StepKind,
        body: LineDict,
        defaults: Mapping[str, Any],
        variables: Mapping[str, str],
        matrix: Mapping[str, tuple[Any, int]],
    ) -> tuple[dict[str, Any], frozenset[str]]:
        """The step's parameters: its own keys, ``matrix`` (an instance's values of the kind's
        fields, with their lines) and the defaults the kind takes; and the keys that had problems.

        After a problem the parameters hold the keys that were right, so the step's references
        and output can still be checked; the kind's own checks are not run on them (they would
        report a missing value as if it had not been written)."""
        fields = kind.fields
        params: dict[str, Any] = {}
        lines = {key: line for key, (_, line) in matrix.items()}
        bad: set[str] = set()
        written = [(k, v, body.line_of(k)) for k, v in body.items() if k not in STEP_KEYS]
        for key, value, line in [*written, *((k, v, n) for k, (v, n) in matrix.items())]:
            spec = fields.get(key)
            if spec is None or not spec.on_step:
                bad.add(str(key))
                self.problem(line, self.unknown_key_message(str(key), kind), step_id)
                continue
            good, converted = self.convert(value, spec, variables, line, step_id, key)
            if good:
                params[key] = converted
            else:
                bad.add(key)
        filled = {key: target for key, target in _fills(kind).items() if key in body}
        for key, target in filled.items():
            if key in params and not self.fill_from_file(
                params, key, target, body, variables, step_id
            ):
                bad.update((key, target))
        params = kind.resolve(params, defaults)
        for key, spec in fields.items():
            if spec.required and params.get(key) is None and key not in body:
                if key in filled.values():
                    continue  # the file that fills it is missing or wrong: reported there
                bad.add(key)
                where = " (on the step or in 'defaults')" if key in kind.defaults else ""
                self.problem(body.line, f"missing '{key}'{where}", step_id)
        if bad:
            return params, frozenset(bad)
        for key, message in kind.check(params):
            self.problem(lines.get(key or "") or body.line_of(key), message, step_id)
        for key, message in kind.warnings(params):
            self.warn(lines.get(key or "") or body.line_of(key), message, step_id)
        return params, frozenset()

    def fill_from_file(
        self,
        params: dict[str, Any],
        key: str,
        target: str,
        body: LineDict,
        variables: Mapping[str, str],
        step_id: str,
    ) -> bool:
        """Put the text of the file ``params[key]`` names, vars substituted, in ``params[target]``."""
        line = body.line_of(key)
        if target in params:
            self.problem(line, f"'{key}' and '{target}' are both given: keep one", step_id)
            return False
        path = self.confine(params[key], line, step_id, key)
        if path is None:
            return False
        text = self.text_files.get(path)
        if text is None:
            try:
                data = self.disk.read(str(path), MAX_WORKFLOW_BYTES + 1)
                if len(data) > MAX_WORKFLOW_BYTES:
                    raise OSError(f"over {MAX_WORKFLOW_BYTES:,} bytes")
                text = self.text_files[path] = data.decode("utf-8-sig")
            except FileNotFoundError:
                shown = display_path(path)
                self.problem(line, f"'{key}': no such file {shown}", step_id)
                return False
            except (OSError, UnicodeDecodeError) as exc:
                reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc
                self.problem(line, f"'{key}': cannot read {display_path(path)}: {reason}", step_id)
                return False
        try:
            params[target] = self.expand(text, variables)
        except (UnknownVar, TooLarge) as exc:
            self.problem(line, f"'{key}' ({params[key]}){self.var_problem(exc)}", step_id)
            return False
        except TooMuch as exc:
            raise self.stop(line, step_id, exc) from None
        return True

    def unknown_key_message(self, key: str, kind: StepKind) -> str:
        spec = kind.fields.get(key)
        if spec is not None and not spec.on_step:
            return f"'{key}' is a setting for the whole run: set it in 'defaults', not on a step"
        allowed = [*STEP_KEYS, *(name for name, f in kind.fields.items() if f.on_step)]
        hint = suggest(key, allowed)
        if not hint:
            owners = [
                name
                for name, other in KINDS.items()
                if key in other.fields and other.fields[key].on_step
            ]
            if owners:
                hint = f" ('{key}' belongs to {' and '.join(owners)} steps)"
        return f"unknown key '{key}' for a {kind.name} step{hint}"

    def convert(
        self,
        value: Any,
        spec: Field,
        variables: Mapping[str, str],
        line: int,
        step: str | None,
        key: str,
    ) -> tuple[bool, Any]:
        """Substitute vars, check the type and range; returns (ok, value as the key sees it)."""
        try:
            value = _substitute_all(value, variables, self.expand)
        except (UnknownVar, TooLarge) as exc:
            self.problem(line, f"'{key}'{self.var_problem(exc)}", step)
            return False, None
        except TooMuch as exc:
            raise self.stop(line, step, exc) from None
        error, value = _check_type(value, spec)
        if error is not None:
            self.problem(line, f"'{key}' {error}", step)
            return False, None
        return True, value

    def resolve_refs(
        self,
        item: _Parsed,
        doc: LineDict,
        groups: Mapping[str, list[str]],
        values: Mapping[str, Mapping[str, str]],
    ) -> list[tuple[str, list[Ref]]] | None:
        """Each reference as written, with the inputs it stands for (a matrix step: several)."""
        resolved: list[tuple[str, list[Ref]]] = []
        ok = True
        kind, body, name = item.kind, item.body, item.instance.name
        for text in kind.references(item.params):
            line = _ref_line(body, kind, text)
            selector = parse_selector(text)
            group = text if text in doc else selector[0] if selector else None
            if group is not None and group in doc:
                if self.disk.has_entry(str(self.root), text):
                    self.problem(
                        line,
                        f"'{text}' is both a step id and a file ({display_path(self.root / text)});"
                        f" rename the step, or write ./{text} for the file",
                        name,
                    )
                    ok = False
                elif group == item.group:
                    self.problem(line, "a step cannot use its own output", name)
                    ok = False
                elif group not in groups:
                    ok = False  # the step it names has problems of its own, reported there
                else:
                    chosen = select(text, groups, values)
                    if not chosen:
                        some = ", ".join(groups[group][:3])
                        self.problem(
                            line,
                            f"'{text}' selects no instance of '{group}' (it has {some}, …)",
                            name,
                        )
                        ok = False
                    resolved.append((text, [Ref(instance, step=instance) for instance in chosen]))
                continue
            path = self.confine(text, line, name, "input")
            if path is None:
                ok = False
                continue
            unusable = self.unusable_input(text, path, doc)
            if unusable is not None:
                ok = False
                self.problem(line, unusable, name)
                continue
            resolved.append((text, [Ref(text, path=path)]))
        return resolved if ok else None

    def expand_references(
        self, item: _Parsed, resolved: list[tuple[str, list[Ref]]]
    ) -> dict[str, Any] | None:
        """``item``'s parameters with each reference as the inputs it stands for: a matrix step's
        id becomes its instances' names, so a kind sees (and its recipe records) what it gets."""
        params = dict(item.params)
        remaining = list(resolved)
        for name in item.kind.reference_fields:
            value = params.get(name)
            written = [value] if isinstance(value, str) else value
            if not isinstance(written, list):
                continue
            texts: list[str] = []
            for text in written:
                if isinstance(text, str) and remaining:
                    texts.extend(ref.text for ref in remaining.pop(0)[1])
            if isinstance(value, str):
                if len(texts) != 1:
                    self.problem(
                        item.body.line_of(name),
                        f"'{name}' takes one image, but '{value}' is {len(texts)} instances: "
                        f"name one, such as '{texts[0]}'",
                        item.instance.name,
                    )
                    return None
                params[name] = texts[0]
            else:
                params[name] = texts
        for text, found in remaining:  # nested references (a layer's image) take one image each
            if len(found) != 1:
                self.problem(
                    item.body.line,
                    f"'{text}' is {len(found)} instances where one image goes: name one, "
                    f"such as '{found[0].text}'",
                    item.instance.name,
                )
                return None
        return params

    def resolve_output(self, item: _Parsed) -> tuple[Path, str, str] | None:
        kind, params, body, name = item.kind, item.params, item.body, item.instance.name
        line = body.line_of("output")
        written = body.get("output")
        if written is not None and not isinstance(written, str):
            self.problem(line, "'output' must be a path", name)
            return None
        if written is not None:
            try:
                written = self.expand(written, item.variables)
            except (UnknownVar, TooLarge) as exc:
                self.problem(line, f"'output'{self.var_problem(exc)}", name)
                return None
            except TooMuch as exc:
                raise self.stop(line, name, exc) from None
        suffix = os.path.splitext(written)[1].lower() if written else None
        fmt = kind.output_format(params, suffix)
        if written is None:
            stem = f"{item.group}/{item.instance.slug}" if item.instance.values else name
            written = kind.default_output(stem, fmt)
        elif FORMAT_BY_SUFFIX.get(suffix or "") != fmt and "format" not in item.bad:
            if kind.uses_api and fmt == "png":
                message = (
                    f"{kind.name} steps write PNG: name the output .png and add a resize step to "
                    "convert it"
                )
            else:
                message = f"the output's extension does not match its format {fmt!r}"
            self.problem(line, message, name)
            return None
        path = self.confine(written, line, name, "output")
        if path is None:
            return None
        rel = os.path.relpath(path, self.root) if self.allow_outside else os.path.normpath(written)
        return path, Path(rel).as_posix(), fmt

    def unusable_input(self, text: str, path: Path, doc: LineDict) -> str | None:
        """Why input file ``text`` cannot be read, or None when it can."""
        shown = display_path(self.root / text)
        found = self.disk.file_type(str(path))
        if found == "file":
            return None
        if found == "unreadable":
            return f"cannot read {shown}: permission denied"
        if found == "folder":
            return f"'{text}' is a folder ({shown}), not an image file"
        if found == "other":
            return f"'{text}' is not a regular file ({shown} is a pipe or a device?)"
        hint = suggest(text, [k for k in doc if isinstance(k, str)])
        return f"'{text}' is neither a step nor a file (no {shown}){hint}"

    def confine(self, text: str, line: int, step_id: str, what: str) -> Path | None:
        """The absolute path for ``text``, refusing one that leaves the workflow's folder."""
        if "\0" in text:  # no file has such a name, and the OS refuses to look one up
            self.problem(line, f"{what} path {text!r} holds a NUL character", step_id)
            return None
        joined = os.path.normpath(os.path.join(self.root, text))
        if self.allow_outside:
            return Path(joined)
        if os.path.isabs(text) or not self.inside(self.real_path(joined)):
            self.problem(
                line,
                f"{what} path '{text}' leaves the workflow's folder "
                "(pass --allow-outside to allow it)",
                step_id,
            )
            return None
        return Path(joined)

    def real_path(self, joined: str) -> str:
        """``os.path.realpath``, resolving each folder once: thousands of outputs share a few."""
        folder, name = os.path.split(joined)
        real_folder = self.real_folders.get(folder)
        if real_folder is None:
            real_folder = self.real_folders[folder] = self.disk.realpath(folder)
        real = os.path.join(real_folder, name)
        return self.disk.realpath(real) if self.disk.is_link(real) else real

    def inside(self, real: str) -> bool:
        root = self.real_root
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def check_inputs_are_images(self, steps: Mapping[str, Step]) -> None:
        """Every reference is an image input: a step writing something else (a probe's JSON
        report) cannot be one."""
        for step in steps.values():
            for ref in step.refs:
                source = steps.get(ref.step) if ref.step else None
                if source is not None and source.params.get("expect") == "refusal":
                    self.problem(
                        step.line,
                        f"'{ref.text}' expects the model to refuse: it makes no image to use",
                        step.id,
                    )
                elif source is not None and source.format not in IMAGE_FORMATS:
                    self.problem(
                        step.line,
                        f"'{ref.text}' is a {source.kind.name} step: its output "
                        f"{source.output_rel} is {source.format.upper()}, not an image, so it "
                        "cannot be an input",
                        step.id,
                    )

    def check_outputs_are_not_inputs(self, steps: Mapping[str, Step]) -> None:
        outputs = {step.output: step for step in steps.values()}
        for step in steps.values():
            for ref in step.refs:
                if ref.path is not None and ref.path in outputs:
                    writer = outputs[ref.path]
                    self.problem(
                        writer.line,
                        f"its output {writer.output_rel} is an input file of step "
                        f"'{step.id}': use the step id '{writer.id}' as the input instead",
                        writer.id,
                    )

    def check_cycles(self, steps: Mapping[str, Step], doc: LineDict) -> None:
        workflow = Workflow(path=self.path, steps=dict(steps))
        for cycle in find_cycles(workflow):
            path = " -> ".join([*cycle, cycle[0]])
            self.problem(
                doc.line_of(cycle[0]), f"steps depend on each other in a cycle: {path}", cycle[0]
            )


@functools.cache
def _fills(kind: StepKind) -> dict[str, str]:
    """The kind's file fields, each with the parameter its file's text becomes."""
    return {key: spec.fills for key, spec in kind.fields.items() if spec.fills}


class _Stopped(Exception):
    """Loading cannot go on (the vars expand to too much text): ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _substitute_all(value: Any, variables: Mapping[str, str], expand: Expander) -> Any:
    if isinstance(value, str):
        return expand(value, variables)
    if isinstance(value, LineList):
        out = LineList(_substitute_all(v, variables, expand) for v in value)
        out.line, out.item_lines = value.line, value.item_lines
        return out
    if isinstance(value, LineDict):
        mapping = LineDict((k, _substitute_all(v, variables, expand)) for k, v in value.items())
        mapping.line, mapping.key_lines = value.line, value.key_lines
        return mapping
    return value


def _type_name(value: Any) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        LineList: "a list",
        LineDict: "a mapping",
        type(None): "empty",
    }.get(type(value), "a value")


def _check_type(value: Any, spec: Field) -> tuple[str | None, Any]:
    """(error or None, converted value) for ``value`` against ``spec``."""
    kind = spec.type
    if kind == "refs" and isinstance(value, str):
        value = [value]
    if kind in ("str", "ref") and not isinstance(value, str):
        return f"must be text, not {_type_name(value)}", None
    if kind == "scalar":
        if isinstance(value, bool) or not isinstance(value, str | int):
            return f"must be text, not {_type_name(value)}", None
        value = str(value)
    if kind == "bool" and not isinstance(value, bool):
        return f"must be true or false, not {_type_name(value)}", None
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"must be a whole number, not {_type_name(value)}", None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, not {_type_name(value)}", None
        value = float(value)
        if not math.isfinite(value):  # .nan passes every range check, and .inf is no setting
            return f"must be a finite number, not {value}", None
    if kind == "refs":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return "must be a list of step ids or file paths", None
        value = list(value)
    if kind == "list" and not isinstance(value, list):
        return f"must be a list, not {_type_name(value)}", None
    if kind == "file" and not isinstance(value, str):
        return f"must be a file path, not {_type_name(value)}", None
    if kind == "text_or_json":
        if isinstance(value, LineDict | LineList):
            # Keys in the order written, 2-space indent, UTF-8 as is: what the model reads.
            return None, json.dumps(value, indent=2, ensure_ascii=False)
        if not isinstance(value, str):
            return f"must be text, not {_type_name(value)}", None
    if spec.choices is not None and value not in spec.choices:
        return f"must be one of {', '.join(map(str, spec.choices))}, not {value!r}", None
    if spec.minimum is not None and value < spec.minimum:
        return f"must be at least {spec.minimum:g}, not {value}", None
    if spec.maximum is not None and value > spec.maximum:
        return f"must be at most {spec.maximum:g}, not {value}", None
    return None, value


def _ref_line(body: LineDict, kind: StepKind, text: str) -> int:
    """The line where reference ``text`` is written, as near as we know it."""
    for name in kind.reference_fields:
        value = body.get(name)
        if isinstance(value, LineList) and text in value:
            return value.line_of(value.index(text))
        if value is not None:
            return body.line_of(name)
    return body.line


@dataclass(frozen=True)
class _Parsed:
    """One instance of a step, loaded but not yet resolved (references, output)."""

    group: str  # the step id as written
    kind: StepKind
    params: dict[str, Any]
    body: LineDict
    instance: Instance
    variables: Mapping[str, str] = field(default_factory=dict)
    bad: frozenset[str] = frozenset()  # keys with problems (reported): params lacks them


def _matrix_text(value: Any) -> str | None:
    """A matrix value as an instance name shows it; None for a value that cannot be one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _all_text(value: Any) -> str:
    """Every string in ``value``, joined: to see whether a step mentions ``${matrix.x}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_all_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_all_text(v) for v in value)
    return ""
