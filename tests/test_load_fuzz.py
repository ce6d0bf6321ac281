"""Property: whatever a workflow file holds, loading it gives a ``Workflow`` or a ``WorkflowError``.

Never another exception, never a hang. Four kinds of input: arbitrary bytes, arbitrary text, YAML
token soup (tags, anchors, merges, flow and block syntax) and well-formed YAML documents, some of
them shaped like workflows with keys and values of every type. Each example runs in a fresh folder
holding an image, a text file and a sub-folder, so references can hit all three.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PHOTOS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemflow.errors import WorkflowError
from gemflow.kinds import KINDS, defaults_fields
from gemflow.workflow import Workflow
from gemflow.workflow.load import load_workflow
from gemflow.workflow.yamlsafe import YamlError, load_yaml

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- strategies --------------------------------------------------------------------------------

TEXT = st.text(max_size=12)
PATHS = st.sampled_from(
    [
        "a",
        "b",
        "photos/me.jpg",
        "./photos/me.jpg",
        "notes.txt",
        "folder",
        "missing.png",
        "../outside.png",
        "/etc/hostname",
        "out/a.png",
        "out/x.webp",
        "a\0b.png",
        "x" * 300,
        "",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
    | PATHS
    | st.sampled_from(
        ["16:9", "1K", "512", "png", "jpeg", "contain", "cover", "50%", "${a}", "$${"]
    )
)
KEYS = TEXT | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)


def nested(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=16,
    )


VALUES = nested(SCALARS, KEYS)
STEP_KEYS = st.sampled_from(
    [
        *sorted(
            {"kind", "output", *defaults_fields(), *(f for k in KINDS.values() for f in k.fields)}
        ),
        *("x", "y", "opacity", "anchor", "promt"),
    ]
)
LAYER = st.dictionaries(
    st.sampled_from(["image", "x", "y", "width", "height", "opacity", "anchor", "z"]), VALUES
)
STEP_VALUES = VALUES | st.lists(LAYER, max_size=3) | st.lists(PATHS, max_size=3)
STEP = st.fixed_dictionaries(
    {"kind": st.sampled_from(list(KINDS)) | SCALARS},
    optional={"prompt": TEXT, "model": st.just("gemini-3.1-flash-image") | SCALARS},
).flatmap(lambda base: st.dictionaries(STEP_KEYS, STEP_VALUES, max_size=5).map(base.__or__))
WORKFLOWS = st.fixed_dictionaries(
    {},
    optional={
        "version": st.just(1) | SCALARS,
        "defaults": st.dictionaries(st.sampled_from(list(defaults_fields())) | TEXT, SCALARS)
        | VALUES,
        "vars": st.dictionaries(st.sampled_from(["a", "b", "x y"]) | TEXT, SCALARS) | VALUES,
        "steps": st.dictionaries(st.sampled_from(["a", "b", "c"]) | KEYS, STEP | VALUES, max_size=4)
        | VALUES,
        "extra": VALUES,
    },
)
# Steps that are mostly right, so that loading gets as far as references, paths and kind checks.
REFS = st.lists(PATHS, min_size=1, max_size=3)
OUTPUTS = PATHS | st.sampled_from(["out/a.jpg", "out/b.webp", "photos/me.jpg", "c.PNG", "x.gif"])
API_STEP = st.fixed_dictionaries(
    {"kind": st.sampled_from(["generate", "edit"]), "prompt": TEXT | st.just("${a} and $${b}")},
    optional={
        "images": REFS,
        "aspect_ratio": st.sampled_from(["1:1", "16:9", "7:3", "16/9"]),
        "image_size": st.sampled_from(["1K", "1k", "512", "8K"]) | st.integers(),
        "seed": st.integers(),
        "temperature": st.floats(allow_nan=True),
        "output": OUTPUTS,
    },
)
RESIZE_STEP = st.fixed_dictionaries(
    {"kind": st.just("resize"), "image": PATHS},
    optional={
        "width": st.integers(-2, 5000),
        "height": st.integers(-2, 5000),
        "fit": st.sampled_from(["contain", "cover", "exact", "fill"]),
        "format": st.sampled_from(["png", "jpeg", "webp", "gif"]),
        "quality": st.integers(-1, 101),
        "output": OUTPUTS,
    },
)
GRID_STEP = st.fixed_dictionaries(
    {"kind": st.just("composite"), "images": REFS},
    optional={
        "columns": st.integers(-1, 5),
        "gap": st.integers(-1, 5),
        "background": st.sampled_from(["white", "transparent", "#12345678", "nope", "#12"]),
        "cell_width": st.integers(-1, 50),
        "output": OUTPUTS,
    },
)
LAYERS_STEP = st.fixed_dictionaries(
    {"kind": st.just("composite"), "base": PATHS, "layers": st.lists(LAYER | VALUES, max_size=3)},
    optional={"images": REFS, "output": OUTPUTS},
)
SOME_STEP = API_STEP | RESIZE_STEP | GRID_STEP | LAYERS_STEP | STEP
NEAR_WORKFLOWS = st.fixed_dictionaries(
    {
        "defaults": st.just({"model": "gemini-3.1-flash-image"}),
        "steps": st.dictionaries(st.sampled_from(["a", "b", "c"]), SOME_STEP, min_size=1),
    },
    optional={"version": st.just(1), "vars": st.just({"a": "x", "b": "${a}"})},
)
# Pieces of YAML syntax, glued in any order: most results are invalid, some are strange but valid.
FRAGMENTS = st.sampled_from(
    [
        *("\n", "  ", "- ", ": ", "? ", ", ", "[", "]", "{", "}", "---\n", "...\n", "#c\n"),
        *("a", "steps", "kind", "generate", "1", "-1", "0x1F", "1e3", ".nan", "~", "''", '"\\x00"'),
        *("&a ", "*a", "&b ", "*b", "<<: *a\n", "<<: [*a, *b]\n", "<<: ", "=", "|\n  x\n", ">-\n"),
        *("!!int ", "!!float ", "!!bool ", "!!str ", "!!null ", "!!binary ", "!!timestamp "),
        *("!!set ", "!!omap ", "!!pairs ", "!!map ", "!!seq ", "!!merge ", "!!value ", "!local "),
        *("!!python/object:os.system ", "!!python/name:os.system ", "%YAML 1.1\n", "%TAG ! !x\n"),
        *('"\\ud800"', "\t", "\ufeff", "\x85", "\u2028", "\x07"),
    ]
)
TOKEN_SOUP = st.lists(FRAGMENTS, max_size=30).map("".join)


def dumped(data: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """``data`` as YAML text, in block or flow style."""
    return st.tuples(data, st.booleans(), st.booleans()).map(
        lambda t: yaml.safe_dump(t[0], default_flow_style=t[1], allow_unicode=t[2])
    )


# --- the property -------------------------------------------------------------------------------


def loads_or_refuses(content: bytes) -> None:
    """Write ``content`` as a workflow beside a few files, load it: a Workflow or a WorkflowError."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "photos").mkdir()
        shutil.copy(PHOTOS / "me.jpg", root / "photos" / "me.jpg")
        (root / "notes.txt").write_text("not an image")
        (root / "folder").mkdir()
        path = root / "wf.yaml"
        path.write_bytes(content)
        try:
            result = load_workflow(path)
        except WorkflowError as exc:
            assert exc.problems, "a WorkflowError lists at least one problem"
            assert all(p.file and p.message for p in exc.problems)
        else:
            assert isinstance(result, Workflow)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_load_or_are_refused(content: bytes) -> None:
    loads_or_refuses(content)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(TOKEN_SOUP)
def test_yaml_token_soup_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(text.encode("utf-8", "surrogatepass"))


@FUZZ
@pytest.mark.parametrize("pure_python", [False, True], ids=["libyaml", "pure-python"])
@given(TOKEN_SOUP)
def test_yaml_token_soup_parses_or_is_a_yaml_error(pure_python: bool, text: str) -> None:
    with contextlib.suppress(YamlError):
        load_yaml(text, pure_python=pure_python)


@FUZZ
@given(dumped(nested(SCALARS, KEYS)))
def test_arbitrary_yaml_documents_load_or_are_refused(text: str) -> None:
    loads_or_refuses(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(dumped(WORKFLOWS))
def test_workflow_shaped_documents_load_or_are_refused(text: str) -> None:
    loads_or_refuses(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(dumped(NEAR_WORKFLOWS))
def test_nearly_valid_workflows_load_or_are_refused(text: str) -> None:
    loads_or_refuses(text.encode("utf-8", "surrogatepass"))


@FUZZ
@pytest.mark.parametrize("pure_python", [False, True], ids=["libyaml", "pure-python"])
@given(nested(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12), KEYS))
def test_every_document_pyyaml_writes_is_read_without_error(pure_python: bool, data: Any) -> None:
    # Catches wrongful refusals (such as '.nan', once refused), which the properties above allow.
    for flow in (False, True):
        load_yaml(yaml.safe_dump(data, default_flow_style=flow), pure_python=pure_python)
