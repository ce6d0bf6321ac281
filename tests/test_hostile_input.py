"""Hostile and broken input: every bad workflow file or input image gets a clear error, never a
traceback, a hang or a paid API call.

Workflow files are refused by the loader with a ``WorkflowError`` naming the file and, where there is
one, the line. Input images are checked when their step runs, before anything is sent: a broken one
fails that step (naming the file), blocks its dependents and leaves other branches alone.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PHOTOS, Project
from PIL import Image

import gemflow.workflow.load
import gemflow.workflow.plan
import gemflow.workflow.vars
from gemflow.errors import InputError, Problem, WorkflowError
from gemflow.fileio import DigestMemo
from gemflow.imaging.operations import for_api
from gemflow.kinds.base import InputImage
from gemflow.workflow.load import MAX_WORKFLOW_BYTES, load_workflow
from gemflow.workflow.vars import MAX_EXPANDED
from gemflow.workflow.yamlsafe import MAX_ALIASES, MAX_DEPTH, MAX_EXPANSION, YamlError, load_yaml

HEADER = "version: 1\ndefaults: {model: gemini-3.1-flash-image}\nsteps:\n"
ONE_STEP = HEADER + "  a: {kind: generate, prompt: x}\n"
BOTH_PARSERS = pytest.mark.parametrize("pure_python", [False, True], ids=["libyaml", "python"])
RED, BLUE = (255, 0, 0), (0, 0, 255)
# A cheap decompression bomb: Pillow's limit lowered to SMALL_LIMIT pixels, an image of BOMB size.
# Not lower: the emulator, in this process, draws its text through the same check.
SMALL_LIMIT, BOMB = 100_000, (400, 400)


def problems_of(path: Path, content: str | bytes) -> list[Problem]:
    """Write ``content`` to ``path``, load it, and return the problems it is refused with."""
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    return info.value.problems


def the_problem(path: Path, content: str | bytes) -> Problem:
    (problem,) = problems_of(path, content)
    assert problem.file.endswith(path.name)
    return problem


# --- YAML: nesting ---------------------------------------------------------------------------


@BOTH_PARSERS
def test_flow_lists_nested_10000_deep_are_refused(pure_python: bool) -> None:
    with pytest.raises(YamlError, match="nested too deeply") as info:
        load_yaml("[" * 10_000 + "]" * 10_000, pure_python=pure_python)
    assert info.value.line == 1


@BOTH_PARSERS
def test_flow_mappings_nested_10000_deep_are_refused(pure_python: bool) -> None:
    with pytest.raises(YamlError, match="nested too deeply"):
        load_yaml("{a: " * 10_000 + "1" + "}" * 10_000, pure_python=pure_python)


@BOTH_PARSERS
def test_block_mappings_nested_too_deep_are_refused_at_the_first_line_too_deep(
    pure_python: bool,
) -> None:
    text = "".join("  " * level + "a:\n" for level in range(200))
    with pytest.raises(YamlError, match="nested too deeply") as info:
        load_yaml(text, pure_python=pure_python)
    assert info.value.line == MAX_DEPTH + 1


@BOTH_PARSERS
def test_nesting_up_to_the_limit_is_read(pure_python: bool) -> None:
    data, _ = load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, pure_python=pure_python)
    depth = 0
    while isinstance(data, list):
        depth, data = depth + 1, data[0] if data else None
    assert depth == MAX_DEPTH


def test_nesting_one_past_the_limit_is_refused() -> None:
    with pytest.raises(YamlError, match="nested too deeply"):
        load_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_depth_built_through_aliases_counts() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"a: &deep {'[' * half}{']' * half}\nb: {'[' * half}*deep{']' * half}\n"
    with pytest.raises(YamlError, match="nested too deeply"):
        load_yaml(text)


def test_a_deeply_nested_workflow_is_a_workflow_error_with_file_and_line(tmp_path: Path) -> None:
    problem = the_problem(tmp_path / "wf.yaml", HEADER + "  a: " + "[" * 5000 + "]" * 5000)
    assert problem.line == 4
    assert "nested too deeply" in problem.message


# --- YAML: aliases and merge keys ------------------------------------------------------------


# Never let a bomb escape a test unrefused: pytest's traceback would repr the composed node tree,
# aliases expanded, and run out of memory.


def list_bomb(levels: int) -> str:
    """Each level lists the previous one twice: 2**levels strings once the aliases are expanded."""
    lines = ['a0: &a0 ["x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def merge_chain(levels: int, width: int) -> str:
    """Each level merges the previous one ``width`` times: width**levels mappings, expanded."""
    lines = ["a0: &a0 {k0: x, k1: y}"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * width)}]}}")
    return "\n".join(lines) + "\n"


@BOTH_PARSERS
def test_alias_bombs_in_lists_are_refused(pure_python: bool) -> None:
    with pytest.raises(YamlError, match="they stand for more than"):
        load_yaml(list_bomb(levels=60), pure_python=pure_python)


@BOTH_PARSERS
def test_more_aliases_than_the_limit_are_refused_however_small(pure_python: bool) -> None:
    text = "base: &b {k: v}\n" + "".join(f"s{i}: *b\n" for i in range(MAX_ALIASES + 1))
    with pytest.raises(YamlError, match="too many aliases"):
        load_yaml(text, pure_python=pure_python)


@BOTH_PARSERS
def test_alias_bombs_with_few_aliases_are_refused_by_their_size(pure_python: bool) -> None:
    assert MAX_ALIASES >= 2 * 48  # 2**48 strings, from 96 aliases
    with pytest.raises(YamlError, match=f"they stand for more than {MAX_EXPANSION:,} values"):
        load_yaml(list_bomb(levels=49), pure_python=pure_python)


def test_an_alias_bomb_in_a_workflow_is_a_workflow_error(tmp_path: Path) -> None:
    text = list_bomb(levels=20) + HEADER + "  a: {kind: generate, prompt: x}\n"
    assert "they stand for more than" in the_problem(tmp_path / "wf.yaml", text).message


def test_reusing_an_anchored_step_many_times_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    steps = "".join(f"  s{i}: {{<<: *base, seed: {i}}}\n" for i in range(MAX_ALIASES))
    path.write_text(HEADER + "  base: &base {kind: generate, prompt: one, seed: 0}\n" + steps)
    assert len(load_workflow(path).steps) == MAX_ALIASES + 1


@BOTH_PARSERS
def test_alias_bombs_through_merge_keys_are_refused(pure_python: bool) -> None:
    assert MAX_ALIASES >= 10 * 10  # within the alias count: refused for its size
    with pytest.raises(YamlError, match="they stand for more than"):
        load_yaml(merge_chain(levels=10, width=10), pure_python=pure_python)


@BOTH_PARSERS
def test_merging_a_mapping_many_times_takes_each_key_once(pure_python: bool) -> None:
    data, duplicates = load_yaml(merge_chain(levels=3, width=3), pure_python=pure_python)
    assert data["a3"] == {"k0": "x", "k1": "y"}
    assert duplicates == []


@BOTH_PARSERS
@pytest.mark.parametrize("text", ["a: &a [*a]", "a: &a {k: *a}", "a: &a {<<: *a}"])
def test_an_alias_inside_its_own_anchor_is_refused(pure_python: bool, text: str) -> None:
    with pytest.raises(YamlError, match="contains it"):
        load_yaml(text, pure_python=pure_python)


def test_a_merged_key_can_be_overridden_without_a_duplicate_key_error(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        HEADER + "  a: &base {kind: generate, prompt: one, seed: 1}\n"
        "  b: {<<: *base, prompt: two}\n"
    )
    steps = load_workflow(path).steps
    assert steps["b"].params["prompt"] == "two"
    assert steps["b"].params["seed"] == 1


def test_a_key_written_twice_beside_a_merge_is_still_a_duplicate(tmp_path: Path) -> None:
    text = HEADER + "  a: &base {kind: generate, prompt: one}\n  b: {<<: *base, seed: 1, seed: 2}\n"
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert problem.line == 5
    assert "duplicate key 'seed'" in problem.message


# --- workflow files: size, encoding, characters ----------------------------------------------


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    content = ONE_STEP + "#" * (MAX_WORKFLOW_BYTES - len(ONE_STEP)) + "\n"
    problem = the_problem(tmp_path / "wf.yaml", content)
    assert problem.line is None
    assert f"over {MAX_WORKFLOW_BYTES:,} bytes" in problem.message


def test_a_file_of_exactly_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(ONE_STEP + "#" * (MAX_WORKFLOW_BYTES - len(ONE_STEP) - 1) + "\n")
    assert path.stat().st_size == MAX_WORKFLOW_BYTES
    assert list(load_workflow(path).steps) == ["a"]


def test_bytes_that_are_not_utf8_are_refused_with_their_line(tmp_path: Path) -> None:
    problem = the_problem(tmp_path / "wf.yaml", ONE_STEP.encode() + b"# caf\xe9\n")
    assert problem.line == 5
    assert problem.message == "not UTF-8 text (byte 0xe9): save it as UTF-8"


def test_a_utf16_file_is_refused_with_advice(tmp_path: Path) -> None:
    problem = the_problem(tmp_path / "wf.yaml", ONE_STEP.encode("utf-16"))
    assert problem.message == "the file is UTF-16 text: save it as UTF-8"


def test_a_utf8_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + ONE_STEP.encode())
    assert list(load_workflow(path).steps) == ["a"]


@pytest.mark.parametrize(("char", "name"), [("\0", "a NUL byte"), ("\x07", "U+0007")])
def test_control_characters_are_refused_with_their_line(
    tmp_path: Path, char: str, name: str
) -> None:
    problem = the_problem(
        tmp_path / "wf.yaml", ONE_STEP + f"  b: {{kind: generate, prompt: x{char}}}\n"
    )
    assert problem.line == 5
    assert name in problem.message


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_is_refused(tmp_path: Path, content: str) -> None:
    assert the_problem(tmp_path / "wf.yaml", content).message.startswith("the file is empty")


@pytest.mark.parametrize("content", ["- a\n- b\n", "just text\n", "42\n", "null\n", "# notes\n"])
def test_a_document_that_is_not_a_mapping_is_refused(tmp_path: Path, content: str) -> None:
    problem = the_problem(tmp_path / "wf.yaml", content)
    assert problem.line == 1
    assert problem.message.startswith("a workflow is a mapping")


def test_two_documents_are_refused_at_the_second(tmp_path: Path) -> None:
    problem = the_problem(tmp_path / "wf.yaml", ONE_STEP + "---\n" + ONE_STEP)
    assert problem.line == 5
    assert "expected a single document" in problem.message


def test_tab_indentation_is_refused_with_its_line(tmp_path: Path) -> None:
    problem = the_problem(tmp_path / "wf.yaml", HEADER + "  a:\n\tkind: generate\n")
    assert problem.line == 5


# --- workflow files: keys, tags, values ------------------------------------------------------


def test_a_list_as_a_key_is_refused(tmp_path: Path) -> None:
    problem = the_problem(tmp_path / "wf.yaml", HEADER + "  ? [a]\n  : {kind: generate}\n")
    assert problem.line == 4
    assert problem.message == "a mapping key must be a plain value"


def test_a_number_as_a_step_id_is_refused(tmp_path: Path) -> None:
    problem = the_problem(tmp_path / "wf.yaml", HEADER + "  1: {kind: generate, prompt: x}\n")
    assert problem.line == 4
    assert problem.message.startswith("step id 1 must start with a letter")


@pytest.mark.parametrize("body", ["  a:\n", "  a: null\n", "  a: ~\n"])
def test_a_null_step_is_refused(tmp_path: Path, body: str) -> None:
    problem = the_problem(tmp_path / "wf.yaml", HEADER + body)
    assert (problem.line, problem.step) == (4, "a")
    assert problem.message == "a step is a mapping with at least 'kind'"


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object:os.system {}",
        "!!python/object/apply:os.system ['true']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object/new:os.system [x]",
    ],
)
def test_python_tags_are_refused(tmp_path: Path, tag: str) -> None:
    problem = the_problem(
        tmp_path / "wf.yaml", HEADER + f"  a:\n    kind: generate\n    prompt: {tag}\n"
    )
    assert problem.line == 6
    assert "could not determine a constructor" in problem.message


def test_a_binary_value_is_a_type_error(tmp_path: Path) -> None:
    text = HEADER + "  a: {kind: generate, prompt: !!binary aGVsbG8=}\n"
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert problem.message == "'prompt' must be text, not a value"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!int abc", "!!int expects a whole number, not 'abc'"),
        ("!!float abc", "!!float expects a number, not 'abc'"),
        ("!!bool maybe", "!!bool expects true or false, not 'maybe'"),
        ("!!map [a]", "!!map expects a mapping, not a sequence"),
        ("!!seq {a: 1}", "!!seq expects a list, not a mapping"),
    ],
)
def test_a_tag_its_value_does_not_fit_is_refused_with_its_line(value: str, message: str) -> None:
    with pytest.raises(YamlError) as info:
        load_yaml(f"a: 1\nb: {value}\n")
    assert (info.value.line, str(info.value)) == (2, message)


SAFE_TAGS = [
    *("!!null", "!!bool", "!!int", "!!float", "!!binary", "!!timestamp", "!!str"),
    *("!!set", "!!omap", "!!pairs", "!!map", "!!seq", "!!merge", "!!value", "!local"),
]


@BOTH_PARSERS
@pytest.mark.parametrize("tag", SAFE_TAGS)
@pytest.mark.parametrize("node", ["x", "''", "12", "[a, b]", "{a: 1}", "[{a: 1}]", "{? [a]}"])
def test_every_tag_on_every_kind_of_node_loads_or_is_refused(
    pure_python: bool, tag: str, node: str
) -> None:
    try:
        load_yaml(f"v: {tag} {node}\n", pure_python=pure_python)
    except YamlError as exc:
        assert exc.line == 1


@pytest.mark.parametrize(
    ("text", "expected"), [(".nan", "nan"), (".NaN", "nan"), ("-.inf", "-inf")]
)
def test_nan_and_infinity_are_numbers(text: str, expected: str) -> None:
    data, _ = load_yaml(f"v: {text}\n")
    assert str(data["v"]) == expected


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("timeout: .nan", "'timeout' must be a finite number, not nan"),
        ("timeout: .inf", "'timeout' must be a finite number, not inf"),
        ("temperature: .nan", "'temperature' must be a finite number, not nan"),
        ("temperature: -.inf", "'temperature' must be a finite number, not -inf"),
        ("matrix: {temperature: [0.5, .NaN]}", "'temperature' must be a finite number, not nan"),
    ],
)
def test_a_number_that_is_not_finite_is_refused(tmp_path: Path, setting: str, message: str) -> None:
    problem = the_problem(
        tmp_path / "wf.yaml", HEADER + f"  a: {{kind: generate, prompt: x, {setting}}}\n"
    )
    assert (problem.line, problem.message) == (4, message)


def test_a_default_that_is_not_finite_is_refused(tmp_path: Path) -> None:
    text = ONE_STEP.replace(
        "{model: gemini-3.1-flash-image}", "{model: gemini-3.1-flash-image, rpm: .inf}"
    )
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert problem.message == "'defaults.rpm' must be a finite number, not inf"


@pytest.mark.parametrize("option", ["--rpm", "--batch-poll", "--batch-deadline"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_command_line_number_that_is_not_finite_is_a_usage_error(
    project: Project, option: str, value: str
) -> None:
    project.write(ONE_STEP)
    doc = project.run_json(option, value, expect=2)
    assert (doc["ok"], doc["exit_code"]) == (False, 2)
    assert f"{value} is not a finite number" in doc["errors"][0]["message"]
    assert project.emulator.requests == []


def test_an_equals_sign_is_text() -> None:
    data, _ = load_yaml("v: =\n=: v\n")
    assert data == {"v": "=", "=": "v"}


def test_an_explicit_timestamp_stays_text() -> None:
    data, _ = load_yaml("v: !!timestamp 2026-01-01\nw: !!timestamp soon\n")
    assert data == {"v": "2026-01-01", "w": "soon"}


@BOTH_PARSERS
def test_a_lone_surrogate_escape_is_refused(pure_python: bool) -> None:
    with pytest.raises(YamlError) as info:
        load_yaml('a: 1\nb: "\\ud800"\n', pure_python=pure_python)
    assert info.value.line == 2


def test_a_list_as_a_layer_anchor_is_refused(tmp_path: Path) -> None:
    layers = "[{image: a, anchor: []}]"
    text = (
        HEADER
        + f"  a: {{kind: generate, prompt: x}}\n  b: {{kind: composite, base: a, layers: {layers}}}\n"
    )
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert "'anchor' must be one of" in problem.message


# --- workflow files: vars that multiply ------------------------------------------------------


def vars_bomb(levels: int) -> str:
    """Each var uses the one before ten times, so ``v{levels}`` stands for 10**(levels + 1) x's,
    and the step's prompt is that var. At 8 levels this is the audit's bomb: some 650 bytes that
    expand into a 1 GB prompt."""
    lines = ["version: 1", "vars:", "  v0: xxxxxxxxxx"]
    lines += [f"  v{i}: '{f'${{v{i - 1}}}' * 10}'" for i in range(1, levels + 1)]
    step = f"{{kind: generate, model: gemini-3.1-flash-image, prompt: '${{v{levels}}}'}}"
    return "\n".join([*lines, "steps:", f"  a: {step}"]) + "\n"


@pytest.mark.parametrize("levels", [6, 8], ids=["10 MB", "1 GB"])
def test_vars_that_multiply_past_the_limit_are_refused_naming_the_var(
    tmp_path: Path, levels: int
) -> None:
    started = time.monotonic()
    problems = problems_of(tmp_path / "wf.yaml", vars_bomb(levels))
    assert time.monotonic() - started < 2
    assert [(p.line, p.step, p.message) for p in problems] == [
        (9, None, f"var 'v6': expands to more than {MAX_EXPANDED:,} characters (at '${{v5}}')"),
        *[
            (3 + i, None, f"var 'v{i}': uses var 'v{i - 1}', which has an error")
            for i in range(7, levels + 1)
        ],
        (5 + levels, "a", f"'prompt': uses var 'v{levels}', which has an error"),
    ]


def test_a_vars_bomb_through_the_cli_is_one_json_document_and_exit_2(project: Project) -> None:
    project.write(vars_bomb(8))
    doc = project.run_json(expect=2)
    assert (doc["ok"], doc["exit_code"]) == (False, 2)
    assert doc["errors"][0]["message"].startswith("var 'v6': expands to more than")
    assert project.emulator.requests == []


def test_a_var_of_the_largest_size_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        HEADER.replace("steps:", f"vars:\n  big: {'x' * MAX_EXPANDED}\nsteps:")
        + "  a: {kind: generate, prompt: x, description: '${big}'}\n"
    )
    assert len(load_workflow(path).steps["a"].params["description"]) == MAX_EXPANDED


def test_a_string_that_its_vars_make_too_long_is_refused(tmp_path: Path) -> None:
    half = MAX_EXPANDED // 2 + 1
    text = HEADER.replace("steps:", f"vars:\n  half: {'x' * half}\nsteps:")
    text += "  a: {kind: generate, prompt: '${half} and ${half}'}\n"
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert (problem.line, problem.step) == (6, "a")
    assert problem.message == (
        f"'prompt' expands to more than {MAX_EXPANDED:,} characters (at '${{half}}')"
    )


def test_vars_used_by_many_steps_are_bounded_in_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gemflow.workflow.vars, "MAX_EXPANDED_TOTAL", 1_000_000)
    text = HEADER.replace("steps:", f"vars:\n  big: {'x' * 100_000}\nsteps:")
    text += "".join(f"  s{i}: {{kind: generate, prompt: 'a ${{big}}'}}\n" for i in range(20))
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert (problem.line, problem.step) == (16, "s10")  # 11 x 99,994 added
    assert problem.message == (
        "vars expand to more than 1,000,000 characters in all: the workflow is not loaded further"
    )


# --- workflow files: what the path is --------------------------------------------------------


def test_a_folder_given_as_the_workflow_is_refused(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").mkdir()
    with pytest.raises(WorkflowError, match="cannot read: it is a folder, not a file"):
        load_workflow(tmp_path / "wf.yaml")


def fails_within(seconds: float, action: Callable[[], None], fifo: Path) -> BaseException | None:
    """Run ``action`` in a thread; if it is still blocked on ``fifo`` after ``seconds``, unblock it
    by opening the writing end, and fail. Returns the exception ``action`` raised, if any."""
    outcome: list[BaseException | None] = [None]

    def target() -> None:
        try:
            action()
        except BaseException as exc:
            outcome[0] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join()
        pytest.fail(f"blocked reading the FIFO {fifo}")
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_given_as_the_workflow_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "wf.yaml"
    os.mkfifo(fifo)
    error = fails_within(5, lambda: load_workflow(fifo), fifo)
    assert isinstance(error, WorkflowError)
    assert "not a regular file" in str(error)


def test_a_folder_given_as_an_input_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    text = HEADER + "  a: {kind: edit, images: [photos], prompt: x}\n"
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert (problem.line, problem.step) == (4, "a")
    assert problem.message.startswith("'photos' is a folder")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_given_as_an_input_image_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    (tmp_path / "wf.yaml").write_text(HEADER + "  a: {kind: edit, images: [pipe.png], prompt: x}\n")
    error = fails_within(5, lambda: load_workflow(tmp_path / "wf.yaml"), fifo)
    assert isinstance(error, WorkflowError)
    assert "'pipe.png' is not a regular file" in str(error)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads a chmod 000 file anyway"
)
def test_an_unreadable_input_image_is_refused(tmp_path: Path) -> None:
    photo = tmp_path / "me.jpg"
    photo.write_bytes(b"x")
    photo.chmod(0)
    text = HEADER + "  a: {kind: edit, images: [me.jpg], prompt: x}\n"
    assert "permission denied" in the_problem(tmp_path / "wf.yaml", text).message


def test_an_input_the_os_says_is_unreadable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same check as above, for runs as root: the OS's answer is simulated.
    photo = tmp_path / "me.jpg"
    photo.write_bytes(b"x")
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != photo and access(path, mode))
    text = HEADER + "  a: {kind: edit, images: [me.jpg], prompt: x}\n"
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert problem.message.endswith("me.jpg: permission denied")


def test_an_input_path_holding_a_nul_character_is_refused(tmp_path: Path) -> None:
    text = HEADER + '  a: {kind: edit, images: ["me\\0.jpg"], prompt: x}\n'
    problem = the_problem(tmp_path / "wf.yaml", text)
    assert problem.message == "input path 'me\\x00.jpg' holds a NUL character"


def test_an_input_name_too_long_for_the_system_is_simply_not_there(tmp_path: Path) -> None:
    name = "x" * 300 + ".png"
    text = HEADER + f"  a: {{kind: edit, images: [{name}], prompt: x}}\n"
    assert "is neither a step nor a file" in the_problem(tmp_path / "wf.yaml", text).message


def test_a_step_id_too_long_to_be_a_file_name_is_still_a_step(tmp_path: Path) -> None:
    long_id = "s" * 300
    path = tmp_path / "wf.yaml"
    path.write_text(
        HEADER + f"  {long_id}: {{kind: generate, prompt: x, output: out/s.png}}\n"
        f"  b: {{kind: edit, images: [{long_id}], prompt: y}}\n"
    )
    assert load_workflow(path).steps["b"].refs[0].step == long_id


# --- input images: what is sent --------------------------------------------------------------


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(
    color: tuple[int, ...] | int, mode: str = "RGB", size: tuple[int, int] = (8, 8)
) -> Image.Image:
    return Image.new(mode, size, color)


def png_16_bit_rgb(value: tuple[int, int, int], size: tuple[int, int] = (4, 4)) -> bytes:
    """A 48-bit RGB PNG, which Pillow reads as plain 8-bit RGB (so only the header tells)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\0" + struct.pack(">3H", *value) * size[0]
    header = struct.pack(">IIBBBBB", *size, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size[1]))
        + chunk(b"IEND", b"")
    )


def rotated_jpeg() -> bytes:
    """A 32x16 JPEG, red on the left, whose EXIF says: turn me 90° clockwise to display."""
    landscape = solid(RED, size=(32, 16))
    landscape.paste(BLUE, (16, 0, 32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(landscape, "JPEG", exif=exif)


def animated(fmt: str, **options: object) -> bytes:
    return encoded(
        solid(RED), fmt, save_all=True, append_images=[solid(BLUE)], duration=100, **options
    )


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


NATIVE = {
    "rgb.png": (encoded(solid(RED)), "image/png"),
    "rgba.png": (encoded(solid((1, 2, 3, 4), "RGBA")), "image/png"),
    "gray.png": (encoded(solid(7, "L")), "image/png"),
    "palette-with-transparency.png": (
        encoded(solid(RED).convert("P"), transparency=0),
        "image/png",
    ),
    "photo.jpg": ((PHOTOS / "me.jpg").read_bytes(), "image/jpeg"),
    "gray.jpg": (encoded(solid(7, "L"), "JPEG"), "image/jpeg"),
    "photo.webp": (encoded(solid(RED), "WEBP", lossless=True), "image/webp"),
    "phone.mpo": (
        encoded(solid(RED), "MPO", save_all=True, append_images=[solid(BLUE)]),
        "image/jpeg",
    ),
}
CONVERTED = {
    "cmyk.jpg": encoded(solid((0, 255, 255, 0), "CMYK"), "JPEG"),
    "sixteen-bit-gray.png": encoded(solid(32768, "I;16")),
    "sixteen-bit-rgb.png": png_16_bit_rgb((65535, 0, 0)),
    "one-bit.png": encoded(solid(1, "1")),
    "animated.gif": animated("GIF"),
    "animated.webp": animated("WEBP", lossless=True),
    "animated.png": animated("PNG"),
    "still.gif": encoded(solid(RED), "GIF"),
    "bitmap.bmp": encoded(solid(RED), "BMP"),
    "scan.tiff": encoded(solid(RED), "TIFF"),
    "rotated.jpg": rotated_jpeg(),
}
BROKEN = {
    "empty.png": (b"", "the file is empty"),
    "notes.png": (b"hello, not a picture", "cannot identify image file"),
    "cut.png": (truncated(encoded(Image.effect_noise((64, 64), 50).convert("RGB"))), "truncated"),
    "cut.jpg": (truncated((PHOTOS / "me.jpg").read_bytes()), "truncated"),
}


@pytest.mark.parametrize("name", NATIVE)
def test_images_the_api_reads_natively_are_sent_as_their_exact_bytes(name: str) -> None:
    data, mime = NATIVE[name]
    assert for_api(data, source=name) == (data, mime)


@pytest.mark.parametrize("name", CONVERTED)
def test_other_images_are_sent_as_png_of_their_first_upright_frame(name: str) -> None:
    sent, mime = for_api(CONVERTED[name], source=name)
    assert mime == "image/png"
    with Image.open(io.BytesIO(sent)) as image:
        assert (image.format, image.mode, getattr(image, "n_frames", 1)) == ("PNG", "RGB", 1)
        assert image.getexif() == {}


@pytest.mark.parametrize("name", CONVERTED)
def test_converting_an_image_always_gives_the_same_bytes(name: str) -> None:
    assert for_api(CONVERTED[name], source=name) == for_api(CONVERTED[name], source=name)


@pytest.mark.parametrize(
    ("name", "pixel"),
    [
        ("cmyk.jpg", RED),
        ("sixteen-bit-gray.png", (128, 128, 128)),  # scaled down, not clipped to white
        ("sixteen-bit-rgb.png", RED),
        ("animated.gif", RED),  # the first frame
        ("animated.webp", RED),
        ("animated.png", RED),
    ],
)
def test_converted_images_keep_their_colours(name: str, pixel: tuple[int, int, int]) -> None:
    sent, _ = for_api(CONVERTED[name], source=name)
    with Image.open(io.BytesIO(sent)) as image:
        assert image.getpixel((0, 0)) == pixel


def test_an_exif_rotated_jpeg_is_sent_upright() -> None:
    sent, _ = for_api(rotated_jpeg(), source="rotated.jpg")
    with Image.open(io.BytesIO(sent)) as image:
        assert image.size == (16, 32)
        top = image.getpixel((8, 4))
        assert top[0] > 200 and top[2] < 60  # the red left edge is now the top


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_image_is_refused_naming_the_file(name: str) -> None:
    data, reason = BROKEN[name]
    with pytest.raises(InputError, match=rf"^photos/{name}: not a readable image \(.*{reason}"):
        for_api(data, source=f"photos/{name}")


def test_a_decompression_bomb_is_refused_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SMALL_LIMIT)
    with pytest.raises(InputError, match=r"^big\.png: image is too large \(160,000 pixels"):
        for_api(encoded(solid(RED, size=BOMB)), source="big.png")


def test_heic_is_sent_as_it_is_because_it_cannot_be_checked(tmp_path: Path) -> None:
    heic = b"\0\0\0\x18ftypheic" + b"\0" * 32
    (tmp_path / "me.heic").write_bytes(heic)
    (tmp_path / "wf.yaml").write_text(HEADER + "  a: {kind: edit, images: [me.heic], prompt: x}\n")
    step = load_workflow(tmp_path / "wf.yaml").steps["a"]
    request = step.kind.build_request(step, [InputImage("me.heic", heic)])
    assert request.images == ((heic, "image/heic"),)


# --- input images: end to end through the CLI ------------------------------------------------

PIPELINE = """\
version: 1
defaults: {{model: gemini-3.1-flash-image}}
steps:
  scene: {{kind: edit, images: [{photo}], prompt: Use the photo.}}
  after: {{kind: edit, images: [scene], prompt: Then this.}}
  other: {{kind: generate, prompt: Independent.}}
"""


def with_input(project: Project, name: str, data: bytes) -> Path:
    """The pipeline above, with ``data`` as its input file ``name``."""
    path = project.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    project.write(PIPELINE.format(photo=name))
    return path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def outcome(doc: dict) -> dict[str, str]:
    return {step["id"]: step["status"] for step in doc["steps"]}


def error_of(doc: dict, step_id: str) -> str:
    return next(step["error"] for step in doc["steps"] if step["id"] == step_id)


def images_sent(project: Project, prompt: str) -> list[dict]:
    (call,) = [call for call in project.calls() if call["prompt"] == prompt]
    return call["images"]


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_input_fails_its_step_before_any_api_call(project: Project, name: str) -> None:
    data, reason = BROKEN[name]
    with_input(project, f"photos/{name}", data)
    doc = project.run_json(expect=1)
    assert outcome(doc) == {"scene": "failed", "after": "blocked", "other": "run"}
    assert error_of(doc, "scene").startswith(f"photos/{name}: not a readable image (")
    assert reason in error_of(doc, "scene")
    assert project.prompts() == ["Independent."]


def test_a_decompression_bomb_input_fails_its_step_before_any_api_call(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SMALL_LIMIT)
    with_input(project, "photos/big.png", encoded(solid(RED, size=BOMB)))
    doc = project.run_json(expect=1)
    assert outcome(doc)["scene"] == "failed"
    assert error_of(doc, "scene").startswith("photos/big.png: image is too large")
    assert project.prompts() == ["Independent."]


def test_the_terminal_names_the_step_and_the_file_without_a_traceback(project: Project) -> None:
    with_input(project, "photos/me.jpg", b"GIF89a but not really")
    result = project.run(expect=1)
    assert "failed: scene: photos/me.jpg: not a readable image (" in result.stderr
    assert "Traceback" not in result.output
    assert "blocked   after" in result.stderr
    assert (project.root / "out" / "other.png").is_file()
    assert project.prompts() == ["Independent."]


@pytest.mark.parametrize("name", ["cmyk.jpg", "sixteen-bit-rgb.png", "animated.gif", "rotated.jpg"])
def test_an_input_the_api_does_not_read_natively_reaches_it_as_png(
    project: Project, name: str
) -> None:
    with_input(project, f"photos/{name}", CONVERTED[name])
    project.run()
    expected, _ = for_api(CONVERTED[name], source=name)
    (image,) = images_sent(project, "Use the photo.")
    assert (image["mime_type"], image["sha256"]) == ("image/png", sha256_hex(expected))


def test_a_palette_png_with_transparency_reaches_the_api_as_its_exact_bytes(
    project: Project,
) -> None:
    data, _ = NATIVE["palette-with-transparency.png"]
    with_input(project, "photos/icon.png", data)
    project.run()
    (image,) = images_sent(project, "Use the photo.")
    assert (image["mime_type"], image["sha256"]) == ("image/png", sha256_hex(data))


def test_a_cached_step_does_not_decode_its_inputs_again(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []

    def spy(data: bytes, *, source: str) -> tuple[bytes, str]:
        decoded.append(source)
        return for_api(data, source=source)

    monkeypatch.setattr("gemflow.imaging.operations.for_api", spy)
    with_input(project, "photos/me.jpg", NATIVE["photo.jpg"][0])
    project.run()
    assert decoded == ["photos/me.jpg", "scene"]
    project.run()
    project.run("--dry-run")
    assert decoded == ["photos/me.jpg", "scene"]


# --- input files that change under the run ---------------------------------------------------


def after_loading(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Do ``action`` once the CLI has loaded (and checked) the workflow, before anything runs."""
    load = gemflow.workflow.plan.load_planned

    def load_then_act(*args: Any, **kwargs: Any) -> Any:
        workflow = load(*args, **kwargs)
        action()
        return workflow

    monkeypatch.setattr(gemflow.workflow.plan, "load_planned", load_then_act)


def after_hashing(monkeypatch: pytest.MonkeyPatch, path: Path, action: Callable[[], None]) -> None:
    """Do ``action`` once, right after the runner hashed ``path`` to decide its step."""
    digest = DigestMemo.digest
    done: list[Path] = []

    def digest_then_act(self: DigestMemo, target: Path) -> str | None:
        value = digest(self, target)
        if target == path and not done:
            done.append(target)
            action()
        return value

    monkeypatch.setattr(DigestMemo, "digest", digest_then_act)


def test_an_input_deleted_after_loading_fails_its_step_without_a_call(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = with_input(project, "photos/me.jpg", NATIVE["photo.jpg"][0])
    after_loading(monkeypatch, photo.unlink)
    doc = project.run_json(expect=1)
    assert outcome(doc) == {"scene": "failed", "after": "blocked", "other": "run"}
    assert "photos/me.jpg" in error_of(doc, "scene")
    assert project.prompts() == ["Independent."]


def test_an_input_changed_after_its_step_was_decided_fails_it_without_a_call(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = with_input(project, "photos/me.jpg", NATIVE["photo.jpg"][0])
    after_hashing(monkeypatch, photo, lambda: photo.write_bytes(encoded(solid(BLUE))))
    doc = project.run_json(expect=1)
    assert outcome(doc) == {"scene": "failed", "after": "blocked", "other": "run"}
    assert "photos/me.jpg changed" in error_of(doc, "scene")
    assert project.prompts() == ["Independent."]


def test_an_input_deleted_after_its_step_was_decided_fails_it_without_a_call(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = with_input(project, "photos/me.jpg", NATIVE["photo.jpg"][0])
    after_hashing(monkeypatch, photo, photo.unlink)
    doc = project.run_json(expect=1)
    assert outcome(doc) == {"scene": "failed", "after": "blocked", "other": "run"}
    assert "photos/me.jpg" in error_of(doc, "scene")
    assert project.prompts() == ["Independent."]


def test_an_input_replaced_by_a_folder_after_loading_fails_its_step(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = with_input(project, "photos/me.jpg", NATIVE["photo.jpg"][0])

    def replace_with_folder() -> None:
        photo.unlink()
        photo.mkdir()

    after_loading(monkeypatch, replace_with_folder)
    doc = project.run_json(expect=1)
    assert outcome(doc) == {"scene": "failed", "after": "blocked", "other": "run"}
    assert "photos/me.jpg" in error_of(doc, "scene")
    assert project.prompts() == ["Independent."]
