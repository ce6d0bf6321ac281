"""--batch: the API steps' requests go to the Batch API (half price), through the real SDK against
the emulator's batch routes; never submitted twice, every outcome handled like an interactive one."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FAKE_KEY

from gemflow.cache.local import Store
from gemflow.emulator import Emulator
from gemflow.emulator.batch_faults import BatchFaults
from gemflow.engine.batch import BatchSettings
from gemflow.engine.events import RunSummary
from gemflow.engine.ledger import Ledger, Record, display_name
from gemflow.engine.runner import RunOptions, run_workflow
from gemflow.providers.connection import Connection
from gemflow.providers.gemini import GeminiProvider
from gemflow.providers.gemini_batch import GeminiBatches
from gemflow.workflow.load import load_workflow

MODEL = "gemini-3.1-flash-image"
FAST = BatchSettings(poll_seconds=0.05)


def many(count: int, extra: str = "") -> str:
    steps = "".join(
        f"  s{i}: {{kind: generate, model: {MODEL}, prompt: Picture {i}.}}\n" for i in range(count)
    )
    more = textwrap.indent(textwrap.dedent(extra), "  ")
    return f"version: 1\nsteps:\n{steps}{more}"


@pytest.fixture
def faults() -> BatchFaults:
    return BatchFaults(running_seconds=0.05)


@pytest.fixture
def batch_emulator(faults: BatchFaults) -> Iterator[Emulator]:
    with Emulator(scale=0.0625, batch_faults=faults) as emu:
        yield emu


def run(
    root: Path, emu: Emulator, text: str | None = None, settings: BatchSettings = FAST
) -> RunSummary:
    if text is not None:
        (root / "wf.yaml").write_text(text)
    with Store(root / "cache") as store, Connection.emulator(url=emu.url) as connection:
        return run_workflow(
            load_workflow(root / "wf.yaml"),
            store,
            RunOptions(batch=settings),
            connection=connection,
        )


def statuses(summary: RunSummary) -> dict[str, int]:
    return {k: v for k, v in summary.counts().items() if v}


def test_40_steps_are_one_job_and_no_interactive_call(tmp_path: Path, batch_emulator) -> None:
    summary = run(tmp_path, batch_emulator, many(40))
    assert statuses(summary) == {"run": 40}
    assert batch_emulator.api_calls() == []  # no generateContent
    [job] = batch_emulator.batches()
    assert job.state == "SUCCEEDED"
    assert summary.api_calls == 40
    assert summary.usd == pytest.approx(40 * 0.067 / 2, rel=1e-3)  # half price
    again = run(tmp_path, batch_emulator)
    assert statuses(again) == {"cached": 40}
    assert len(batch_emulator.batches()) == 1


def test_a_batch_result_answers_an_interactive_run_and_back(tmp_path: Path, batch_emulator) -> None:
    run(tmp_path, batch_emulator, many(3))
    with Store(tmp_path / "cache") as store, Connection.emulator(url=batch_emulator.url) as c:
        plain = run_workflow(load_workflow(tmp_path / "wf.yaml"), store, RunOptions(), connection=c)
    assert statuses(plain) == {"cached": 3}  # the same request, the same key


def test_steps_that_depend_on_batch_steps_go_on_in_the_next_round(
    tmp_path: Path, batch_emulator
) -> None:
    text = many(
        2,
        """\
        fixed: {kind: edit, model: gemini-3.1-flash-image, images: [s0], prompt: Add a hat.}
        grid: {kind: composite, images: [s1, fixed], columns: 2}
        """,
    )
    summary = run(tmp_path, batch_emulator, text)
    assert statuses(summary) == {"run": 4}
    assert len(batch_emulator.batches()) == 2  # s0 and s1, then fixed
    assert (tmp_path / "out" / "grid.png").is_file()


def test_a_probe_asks_in_two_rounds_and_its_calls_are_cached(
    tmp_path: Path, batch_emulator
) -> None:
    text = "version: 1\nsteps:\n  check: {kind: probe, model: gemini-3.1-flash-image}\n"
    summary = run(tmp_path, batch_emulator, text)
    [report] = summary.steps
    assert report.status == "run" and report.result is not None
    models = sorted(job.model for job in batch_emulator.batches())
    assert models == ["gemini-2.5-flash", "gemini-3.1-flash-image"]  # the probes, then the reads


def test_an_expired_job_falls_back_to_interactive_calls_for_its_steps_only(
    tmp_path: Path, batch_emulator, faults: BatchFaults
) -> None:
    faults.push_job("expire")
    summary = run(tmp_path, batch_emulator, many(5))
    assert statuses(summary) == {"run": 5}
    assert len(batch_emulator.api_calls()) == 5  # interactively, after the job expired


def test_per_item_errors_are_asked_again_only_for_those_items(
    tmp_path: Path, batch_emulator, faults: BatchFaults
) -> None:
    faults.item_at.update({1: "14", 3: "13"})
    summary = run(tmp_path, batch_emulator, many(6))
    assert statuses(summary) == {"run": 6}
    # item_at faults every job's items at those places: the retry of two fails again at 1
    assert [job.item_count for job in batch_emulator.batches()] == [6, 2, 1]


def test_an_invalid_argument_item_fails_its_step(
    tmp_path: Path, batch_emulator, faults: BatchFaults
) -> None:
    faults.item_at.update({0: "3"})
    summary = run(tmp_path, batch_emulator, many(2))
    assert statuses(summary) == {"run": 1, "failed": 1}
    [failed] = [r for r in summary.steps if r.status == "failed"]
    assert "INVALID_ARGUMENT" in (failed.error or "")


def test_a_job_created_by_a_run_that_died_is_adopted_not_submitted_again(
    tmp_path: Path, batch_emulator
) -> None:
    (tmp_path / "wf.yaml").write_text(many(3))
    with Store(tmp_path / "cache") as store, Connection.emulator(url=batch_emulator.url) as c:
        dry = run_workflow(
            load_workflow(tmp_path / "wf.yaml"), store, RunOptions(dry_run=True), connection=c
        )
    keys = {r.key or "" for r in dry.steps}
    # What a run that died right after batches.create left: a record without the job's name.
    from gemflow.kinds.gemini_image import GeminiImageKind  # noqa: F401  (the request shape)
    from gemflow.providers.base import ApiRequest

    name = display_name(MODEL, keys)
    Ledger(tmp_path / "cache" / "batches").put(Record(name, MODEL, sorted(keys)))
    provider = GeminiProvider(FAKE_KEY, base_url=batch_emulator.url, service="emulator")
    requests = {
        r.key: ApiRequest(model=MODEL, prompt=f"Picture {r.id[1:]}.") for r in dry.steps if r.key
    }
    GeminiBatches(provider).submit(MODEL, requests.items(), name)
    provider.close()
    summary = run(tmp_path, batch_emulator)
    assert statuses(summary) == {"run": 3}
    assert [b.display_name for b in batch_emulator.batches()] == [name]  # adopted, not created


def test_detach_submits_and_a_later_run_collects(tmp_path: Path, batch_emulator) -> None:
    detached = run(tmp_path, batch_emulator, many(4), BatchSettings(poll_seconds=0.05, detach=True))
    assert statuses(detached) == {"pending": 4}
    assert detached.ok
    records = Ledger(tmp_path / "cache" / "batches").records()
    assert len(records) == 1 and records[0].job is not None
    collected = run(tmp_path, batch_emulator)
    assert statuses(collected) == {"run": 4}
    assert len(batch_emulator.batches()) == 1  # collected, not submitted again
    assert Ledger(tmp_path / "cache" / "batches").records() == []


def test_the_cli_batch_flag_and_dry_run_prices(tmp_path: Path, batch_emulator) -> None:
    from click.testing import CliRunner

    from gemflow.cli import cli

    (tmp_path / "wf.yaml").write_text(many(2))
    env = {"GEMINI_API_KEY": FAKE_KEY, "GEMFLOW_CACHE_DIR": str(tmp_path / "cache")}
    base = ["run", str(tmp_path / "wf.yaml"), "--base-url", batch_emulator.url, "--json"]
    plan = json.loads(CliRunner().invoke(cli, [*base, "--dry-run", "--batch"], env=env).stdout)
    full = json.loads(CliRunner().invoke(cli, [*base, "--dry-run"], env=env).stdout)
    assert plan["totals"]["usd"] == pytest.approx(full["totals"]["usd"] / 2, rel=1e-4)
    result = CliRunner().invoke(cli, [*base, "--batch", "--batch-poll", "0.05"], env=env)
    assert result.exit_code == 0, result.output
    assert batch_emulator.api_calls() == []
