"""The cache key contract: what can change the picture changes the key; nothing else does."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from gemflow.engine.keys import canonical_json, key_material, step_key
from gemflow.workflow.load import load_workflow

BASE = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
steps:
  a:
    kind: generate
    prompt: A cat on a mat.
    aspect_ratio: 1:1
    temperature: 1
  b:
    kind: resize
    image: a
    width: 64
"""

INPUTS = {"a": [], "b": ["sha256:" + "0" * 64]}


def key_of(
    tmp_path: Path,
    text: str,
    step: str = "a",
    inputs: list[str] | None = None,
    service: str | None = None,
) -> str:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text))
    wf = load_workflow(path)
    digests = INPUTS.get(step, []) if inputs is None else inputs
    return step_key(key_material(wf.steps[step], digests, service))


def test_key_is_an_algorithm_tagged_sha256(tmp_path: Path) -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", key_of(tmp_path, BASE))


def test_canonical_json_sorts_keys_and_is_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_key_material_is_pinned(tmp_path: Path) -> None:
    """A change here breaks every user's cache: bump KEY_FORMAT or a recipe version instead."""
    path = tmp_path / "wf.yaml"
    path.write_text(BASE)
    material = key_material(load_workflow(path).steps["a"], [])
    assert material == {
        "gemflow": 1,
        "kind": "gemini-image",
        "recipe": 1,
        "params": {
            "model": "gemini-3.1-flash-image",
            "prompt": "A cat on a mat.",
            "aspect_ratio": "1:1",
            "temperature": 1.0,
        },
        "format": "png",
        "inputs": [],
    }
    assert step_key(material) == (
        "sha256:" + __import__("hashlib").sha256(canonical_json(material)).hexdigest()
    )


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(BASE.replace("temperature: 1\n", "temperature: 1.0\n"), id="1 vs 1.0"),
        pytest.param(BASE.replace("aspect_ratio: 1:1", 'aspect_ratio: "1:1"'), id="quoted ratio"),
        pytest.param(
            BASE.replace(
                "    prompt: A cat on a mat.\n    aspect_ratio: 1:1\n",
                "    aspect_ratio: 1:1\n    prompt: A cat on a mat.\n",
            ),
            id="key order",
        ),
        pytest.param(BASE.replace("  a:\n", "  # a comment\n  a:\n"), id="comment"),
        pytest.param(
            BASE.replace(
                "    prompt: A cat on a mat.\n",
                "    prompt: A cat on a mat.\n    output: pics/cat.png\n",
            ),
            id="output path",
        ),
        pytest.param(
            BASE.replace(
                "    prompt: A cat on a mat.\n",
                "    prompt: A cat on a mat.\n    description: hello\n",
            ),
            id="description",
        ),
        pytest.param(
            BASE.replace(
                "    prompt: A cat on a mat.", "    prompt: A ${animal} on a mat."
            ).replace("steps:", "vars:\n  animal: cat\nsteps:"),
            id="var spelling",
        ),
        pytest.param(
            BASE.replace("defaults:\n  model: gemini-3.1-flash-image\n", "").replace(
                "    kind: generate\n", "    kind: generate\n    model: gemini-3.1-flash-image\n"
            ),
            id="model from defaults or step",
        ),
    ],
)
def test_changes_that_cannot_change_the_picture_keep_the_key(tmp_path: Path, variant: str) -> None:
    assert key_of(tmp_path, variant) == key_of(tmp_path, BASE)


def test_renaming_a_step_keeps_its_key(tmp_path: Path) -> None:
    renamed = BASE.replace("  a:\n", "  cat:\n").replace("image: a", "image: cat")
    assert key_of(tmp_path, renamed, "cat") == key_of(tmp_path, BASE, "a")


def test_generate_and_edit_with_the_same_request_share_a_key(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(b"\x89PNG")
    text = BASE + "  c:\n    kind: generate\n    prompt: p\n    images: [in.png]\n"
    digest = ["sha256:" + "1" * 64]
    as_edit = text.replace("kind: generate\n    prompt: p", "kind: edit\n    prompt: p")
    assert key_of(tmp_path, text, "c", digest) == key_of(tmp_path, as_edit, "c", digest)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("prompt: A cat on a mat.", "prompt: A cat on a hat."),
        ("aspect_ratio: 1:1", "aspect_ratio: 4:3"),
        ("temperature: 1", "temperature: 0.5"),
        ("    temperature: 1\n", "    temperature: 1\n    seed: 7\n"),
        ("    temperature: 1\n", "    temperature: 1\n    system: Be brief.\n"),
        ("    temperature: 1\n", "    temperature: 1\n    image_size: 2K\n"),
        ("model: gemini-3.1-flash-image", "model: gemini-3-pro-image"),
    ],
)
def test_every_api_parameter_is_in_the_key(tmp_path: Path, old: str, new: str) -> None:
    assert key_of(tmp_path, BASE.replace(old, new)) != key_of(tmp_path, BASE)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("width: 64", "width: 65"),
        ("width: 64", "width: 64\n    format: webp"),
        ("width: 64", "width: 64\n    output: out/b.jpg"),
    ],
)
def test_local_parameters_and_format_are_in_the_key(tmp_path: Path, old: str, new: str) -> None:
    assert key_of(tmp_path, BASE.replace(old, new), "b") != key_of(tmp_path, BASE, "b")


def test_input_bytes_and_their_order_are_in_the_key(tmp_path: Path) -> None:
    x, y = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    keys = {key_of(tmp_path, BASE, "b", inputs) for inputs in ([x], [y], [x, y], [y, x])}
    assert len(keys) == 4


def test_the_service_is_in_the_key_of_api_steps_only(tmp_path: Path) -> None:
    assert key_of(tmp_path, BASE, service="emulator") != key_of(tmp_path, BASE)
    assert key_of(tmp_path, BASE, "b", service="emulator") == key_of(tmp_path, BASE, "b")


LOCAL = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
steps:
  a: {kind: generate, prompt: x}
  b: {kind: generate, prompt: y}
  sheet: {kind: composite, images: [a, b]}
  small: {kind: resize, image: sheet, width: 64, format: webp}
"""


@pytest.mark.parametrize(
    ("step", "old", "new"),
    [
        ("sheet", "images: [a, b]}", "images: [a, b], gap: 0}"),
        ("sheet", "images: [a, b]}", "images: [a, b], columns: 2}"),
        ("sheet", "images: [a, b]}", "images: [a, b], background: white}"),
        ("sheet", "images: [a, b]}", "images: [a, b], labels: false}"),
        ("small", "format: webp}", "format: webp, fit: contain}"),
        ("small", "format: webp}", "format: webp, quality: 90}"),
    ],
)
def test_writing_out_a_default_keeps_the_key(tmp_path: Path, step: str, old: str, new: str) -> None:
    digests = {
        "sheet": ["sha256:" + "1" * 64, "sha256:" + "2" * 64],
        "small": ["sha256:" + "3" * 64],
    }
    before = key_of(tmp_path, LOCAL, step, digests[step])
    assert key_of(tmp_path, LOCAL.replace(old, new), step, digests[step]) == before


def test_a_value_other_than_the_default_changes_the_key(tmp_path: Path) -> None:
    digests = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    before = key_of(tmp_path, LOCAL, "sheet", digests)
    changed = LOCAL.replace("images: [a, b]}", "images: [a, b], columns: 1}")
    assert key_of(tmp_path, changed, "sheet", digests) != before


def test_labels_and_a_title_are_in_the_key(tmp_path: Path) -> None:
    digests = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    keys = {
        key_of(
            tmp_path, LOCAL.replace("images: [a, b]}", f"images: [a, b]{extra}}}"), "sheet", digests
        )
        for extra in (
            "",
            ", labels: true",
            ", title: Cats",
            ", title: Dogs",
            ", labels: true, title: Cats",
        )
    }
    assert len(keys) == 5


def test_a_labelled_grid_s_key_follows_its_captions(tmp_path: Path) -> None:
    digests = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    labelled = LOCAL.replace("images: [a, b]}", "images: [a, b], labels: true}")
    renamed = labelled.replace("  a: {", "  c: {").replace("[a, b]", "[c, b]")
    unlabelled_renamed = LOCAL.replace("  a: {", "  c: {").replace("[a, b]", "[c, b]")

    assert key_of(tmp_path, renamed, "sheet", digests) != key_of(
        tmp_path, labelled, "sheet", digests
    )
    assert key_of(tmp_path, unlabelled_renamed, "sheet", digests) == key_of(
        tmp_path, LOCAL, "sheet", digests
    )
