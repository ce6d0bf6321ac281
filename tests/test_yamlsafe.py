"""The YAML loader reads scalars as YAML 1.2 does and remembers where everything is."""

from __future__ import annotations

import pytest

from gemflow.workflow.yamlsafe import MAX_ALIASES, YamlError, load_yaml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16:9", "16:9"),  # YAML 1.1: the base-60 integer 969
        ("1:1", "1:1"),
        ("190:20:30", "190:20:30"),
        ("yes", "yes"),  # YAML 1.1: true
        ("off", "off"),
        ("NO", "NO"),
        ("2026-01-01", "2026-01-01"),  # YAML 1.1: a date
        ("010", 10),  # YAML 1.1: octal 8
        ("0o10", 8),
        ("0x1F", 31),
        ("512", 512),
        ("-3", -3),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("true", True),
        ("False", False),
        ("~", None),
        ("1K", "1K"),
    ],
)
def test_scalars_follow_yaml_1_2(text: str, expected: object) -> None:
    data, _ = load_yaml(f"v: {text}\n")
    assert data["v"] == expected
    assert type(data["v"]) is type(expected)


def test_lines_of_keys_and_items_are_remembered() -> None:
    data, _ = load_yaml("a: 1\nb:\n  - x\n  - y\nc: {d: 2}\n")
    assert data.line_of("a") == 1
    assert data.line_of("b") == 2
    assert data["b"].line_of(1) == 4
    assert data["c"].line_of("d") == 5


def test_duplicate_keys_are_reported_with_both_lines() -> None:
    data, duplicates = load_yaml("a: 1\nb: 2\na: 3\n")
    assert data == {"a": 3, "b": 2}
    assert duplicates == [("a", 3, 1)]


def test_syntax_errors_carry_a_line() -> None:
    with pytest.raises(YamlError) as info:
        load_yaml("a: 1\nb: [2\n")
    assert info.value.line is not None


def test_alias_bombs_are_refused() -> None:
    lines = ['a0: &a0 ["x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 60)]
    with pytest.raises(YamlError, match="too many aliases"):
        load_yaml("\n".join(lines))


def test_a_few_aliases_are_fine() -> None:
    text = "base: &b {model: m}\n" + "".join(f"s{i}: *b\n" for i in range(MAX_ALIASES))
    data, _ = load_yaml(text)
    assert data["s0"] == {"model": "m"}


def test_python_tags_are_refused() -> None:
    with pytest.raises(YamlError):
        load_yaml("a: !!python/object/apply:os.system ['true']\n")
