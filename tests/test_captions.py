"""Captions: what differs among instances of one matrix step, else the reference itself."""

from __future__ import annotations

import pytest

from gemflow.captions import Instance, captions, parse_instance

PRO = "pancake[model=gemini-3-pro-image,aspect_ratio=16:9,variant=1]"
PRO_2 = "pancake[model=gemini-3-pro-image,aspect_ratio=16:9,variant=2]"
FLASH = "pancake[model=gemini-3.1-flash-image,aspect_ratio=16:9,variant=1]"
FLASH_2 = "pancake[model=gemini-3.1-flash-image,aspect_ratio=16:9,variant=2]"


def test_parse_instance_reads_the_step_and_its_pairs_in_order():
    assert parse_instance(PRO) == Instance(
        "pancake",
        (("model", "gemini-3-pro-image"), ("aspect_ratio", "16:9"), ("variant", "1")),
    )


@pytest.mark.parametrize(
    "ref",
    ["pancake", "photos/me.jpg", "pancake[model]", "pancake[a=b=c]", "pancake[a=b", "x[a=b]y"],
)
def test_parse_instance_refuses_what_is_not_an_instance_name(ref):
    assert parse_instance(ref) is None


def test_instances_of_one_step_are_captioned_by_the_pairs_that_differ():
    assert captions([PRO, PRO_2, FLASH, FLASH_2]) == [
        "model=gemini-3-pro-image · variant=1",
        "model=gemini-3-pro-image · variant=2",
        "model=gemini-3.1-flash-image · variant=1",
        "model=gemini-3.1-flash-image · variant=2",
    ]


def test_pairs_all_instances_share_are_left_out():
    assert captions([PRO, PRO_2]) == ["variant=1", "variant=2"]


def test_values_keep_their_colons():
    wide, tall = "cat[aspect_ratio=16:9]", "cat[aspect_ratio=9:16]"

    assert captions([wide, tall]) == ["aspect_ratio=16:9", "aspect_ratio=9:16"]


def test_a_pair_only_some_instances_have_counts_as_differing():
    assert captions(["cat[a=1]", "cat[a=1,b=2]"]) == ["cat[a=1]", "b=2"]


def test_instances_of_different_steps_are_captioned_by_their_names():
    assert captions(["cat[v=1]", "dog[v=1]"]) == ["cat[v=1]", "dog[v=1]"]


def test_a_mix_of_instances_and_other_references_is_captioned_by_the_references():
    assert captions([PRO, "pancake"]) == [PRO, "pancake"]


def test_one_instance_alone_keeps_its_full_name():
    assert captions([PRO]) == [PRO]


def test_the_same_instance_repeated_keeps_its_full_name():
    assert captions([PRO, PRO]) == [PRO, PRO]


def test_step_ids_are_captioned_as_written():
    assert captions(["fox_1", "fox-2"]) == ["fox_1", "fox-2"]


def test_files_are_captioned_by_their_name():
    assert captions(["photos/me.jpg", "photos/you.png", "./logo.png"]) == [
        "me.jpg",
        "you.png",
        "logo.png",
    ]


def test_files_that_share_a_name_keep_their_paths():
    assert captions(["a/me.jpg", "b/me.jpg", "c/you.jpg"]) == ["a/me.jpg", "b/me.jpg", "you.jpg"]


def test_a_file_named_like_a_step_shown_with_it_keeps_its_path():
    assert captions(["./fox", "fox"]) == ["./fox", "fox"]


def test_no_references_no_captions():
    assert captions([]) == []
