"""--batch: the API steps' requests go to the Batch API (half price), through the real SDK against
the emulator's batch routes; never submitted twice, every outcome handled like an interactive one."""

from __future__ import annotations

import json
import shutil
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY

from gemflow.cache.local import Store
from gemflow.emulator import Emulator
from gemflow.emulator.batch_faults import BatchFaults
from gemflow.emulator.faults import Faults
from gemflow.engine.batch import BatchSettings
from gemflow.engine.events import RunSummary, StepFinished
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


# -- --batch=auto: only big groups go in jobs ----------------------------------------------------

AUTO = BatchSettings(poll_seconds=0.05, mode="auto")
OTHER_MODEL = "gemini-3.1-flash-lite-image"


def chain(start: str, length: int, model: str = MODEL) -> str:
    """``length`` edits, each of the one before, from step ``start``."""
    steps, previous = [], start
    for i in range(length):
        steps.append(
            f"e{i}: {{kind: edit, model: {model}, images: [{previous}], prompt: Edit {i}.}}"
        )
        previous = f"e{i}"
    return "\n".join(steps) + "\n"


def test_auto_batches_a_big_group_and_sends_a_chain_of_edits_at_once(
    tmp_path: Path, batch_emulator
) -> None:
    summary = run(tmp_path, batch_emulator, many(25, chain("s0", 3)), AUTO)
    assert statuses(summary) == {"run": 28}
    [job] = batch_emulator.batches()  # the 25 generates: one request a round is a chain
    assert job.item_count == 25
    assert len(batch_emulator.api_calls()) == 3  # the edits, one round each


def test_auto_sends_a_small_group_at_once(tmp_path: Path, batch_emulator) -> None:
    summary = run(tmp_path, batch_emulator, many(5), AUTO)
    assert statuses(summary) == {"run": 5}
    assert batch_emulator.batches() == []
    assert len(batch_emulator.api_calls()) == 5
    assert summary.usd == pytest.approx(5 * 0.067, rel=1e-3)  # full price


def test_auto_decides_per_model_within_a_round(tmp_path: Path, batch_emulator) -> None:
    small = "".join(
        f"o{i}: {{kind: generate, model: {OTHER_MODEL}, prompt: Other {i}.}}\n" for i in range(3)
    )
    summary = run(tmp_path, batch_emulator, many(20, small), AUTO)
    assert statuses(summary) == {"run": 23}
    assert [(job.model, job.item_count) for job in batch_emulator.batches()] == [(MODEL, 20)]
    assert {call["model"] for call in batch_emulator.api_calls()} == {OTHER_MODEL}


def test_a_dry_run_with_auto_prices_what_the_run_then_spends(
    tmp_path: Path, batch_emulator
) -> None:
    """The 25 generates are one group (half price); the edits, a group of one a round, and a
    small group of another model are sent at once (full price)."""
    small = "".join(
        f"o{i}: {{kind: generate, model: {OTHER_MODEL}, prompt: Other {i}.}}\n" for i in range(3)
    )
    (tmp_path / "wf.yaml").write_text(many(25, chain("s0", 3) + small))

    def plan(batch: BatchSettings | None, emit: Any = ()) -> RunSummary:
        with Store(tmp_path / "cache") as store, Connection.emulator(url=batch_emulator.url) as c:
            options = RunOptions(dry_run=True, batch=batch)
            return run_workflow(
                load_workflow(tmp_path / "wf.yaml"), store, options, connection=c, emit=emit
            )

    told: list[Any] = []
    dry = plan(AUTO, told.append)
    usd, full = {r.id: r.usd for r in dry.steps}, {r.id: r.usd for r in plan(None).steps}
    assert [usd[s] / full[s] for s in ("s0", "s24", "e0", "e2", "o0", "o2")] == pytest.approx(
        [0.5, 0.5, 1, 1, 1, 1]
    )
    finished = [e.report for e in told if isinstance(e, StepFinished)]
    assert finished == dry.steps  # every step told once, at its price
    spent = run(tmp_path, batch_emulator, settings=AUTO)
    assert statuses(spent) == {"run": 31}
    assert dry.usd == pytest.approx(spent.usd, rel=1e-6)
    assert {r.id: r.usd for r in spent.steps} == pytest.approx(usd, rel=1e-6)


def test_the_workflow_defaults_set_the_group_size(tmp_path: Path, batch_emulator) -> None:
    text = many(5).replace("version: 1\n", "version: 1\ndefaults: {batch_min: 5}\n")
    run(tmp_path, batch_emulator, text, AUTO)
    [job] = batch_emulator.batches()
    assert job.item_count == 5
    assert batch_emulator.api_calls() == []


def test_a_chain_goes_on_while_another_models_job_waits(
    tmp_path: Path, batch_emulator, faults: BatchFaults
) -> None:
    """Rounds overlap: the chain's three rounds run while the first round waits for its job (it
    never ends: at its deadline it is cancelled and its requests are sent interactively)."""
    faults.push_job("stuck_running")
    text = many(20, f"c: {{kind: generate, model: {OTHER_MODEL}, prompt: Start.}}\n")
    text += textwrap.indent(chain("c", 3, OTHER_MODEL), "  ")
    settings = BatchSettings(poll_seconds=0.05, mode="auto", deadline_seconds=3)
    summary = run(tmp_path, batch_emulator, text, settings)
    assert statuses(summary) == {"run": 24}
    [job] = batch_emulator.batches()
    assert job.state == "CANCELLED"
    models = [call["model"] for call in batch_emulator.api_calls()]
    assert models == [OTHER_MODEL] * 4 + [MODEL] * 20  # the chain first, then the fallback


# -- jobs cut by count, bytes and tokens ----------------------------------------------------------


def test_jobs_are_cut_to_the_limits_in_order() -> None:
    from gemflow.engine.batch import Limits, chunked

    sizes = {"a": (40, 1), "b": (40, 1), "c": (40, 1), "d": (200, 1), "e": (10, 10), "f": (1, 1)}
    limits = Limits(requests=3, bytes=100, tokens=10)
    cut = list(chunked(sizes, limits, sizes.__getitem__))
    assert cut == [["a", "b"], ["c"], ["d"], ["e"], ["f"]]  # d is too big for any job: alone
    assert list(chunked("abcdefg", Limits(requests=3), lambda item: (1, 1))) == [
        ["a", "b", "c"],
        ["d", "e", "f"],
        ["g"],
    ]


def test_a_line_s_size_is_known_without_encoding_its_images() -> None:
    from gemflow.providers.base import ApiRequest
    from gemflow.providers.gemini_batch import line, line_size

    request = ApiRequest(
        model=MODEL,
        prompt='Ünïcode "quoted"\nprompt',
        images=((b"\x89PNG" * 100, "image/png"), (b"x", "image/jpeg")),
        system="be brief",
        aspect_ratio="16:9",
    )
    assert line_size("k" * 64, request) == len(line("k" * 64, request).encode())


def test_a_group_over_the_byte_limit_goes_in_several_jobs_each_within_it(
    tmp_path: Path, batch_emulator
) -> None:
    from gemflow.providers.base import ApiRequest
    from gemflow.providers.gemini_batch import line_size

    per_line = line_size("0" * 64, ApiRequest(model=MODEL, prompt="Picture 10."))
    limit = 3 * per_line + 10  # three lines of two-digit prompts fit, not four
    summary = run(
        tmp_path, batch_emulator, many(12), BatchSettings(poll_seconds=0.05, max_bytes=limit)
    )
    assert statuses(summary) == {"run": 12}
    jobs = batch_emulator.batches()
    assert len(jobs) >= 4 and sum(job.item_count for job in jobs) == 12
    files = {f.name: f.size for f in batch_emulator.files()}
    assert all(files[job.input_file] <= limit for job in jobs if job.input_file)
    assert batch_emulator.api_calls() == []
    again = run(tmp_path, batch_emulator)
    assert statuses(again) == {"cached": 12}


def test_jobs_are_cut_by_count_and_by_estimated_tokens(tmp_path: Path, batch_emulator) -> None:
    run(tmp_path, batch_emulator, many(5), BatchSettings(poll_seconds=0.05, max_requests=2))
    assert [job.item_count for job in batch_emulator.batches()] == [2, 2, 1]
    tokens = 1120 + 10  # a 1K image out, and a short prompt in
    (tmp_path / "two").mkdir()
    settings = BatchSettings(poll_seconds=0.05, max_tokens=3 * tokens)
    run(tmp_path / "two", batch_emulator, many(5), settings)
    assert [job.item_count for job in batch_emulator.batches()[3:]] == [3, 2]


def test_requests_in_open_jobs_are_not_submitted_again_however_they_are_cut(
    tmp_path: Path, batch_emulator
) -> None:
    detach = BatchSettings(poll_seconds=0.05, detach=True, max_requests=3)
    assert statuses(run(tmp_path, batch_emulator, many(7), detach)) == {"pending": 7}
    assert [job.item_count for job in batch_emulator.batches()] == [3, 3, 1]
    (tmp_path / "wf.yaml").write_text(many(9))  # two more steps; jobs cut another way
    collected = run(tmp_path, batch_emulator, settings=BatchSettings(poll_seconds=0.05))
    assert statuses(collected) == {"run": 9}
    assert [job.item_count for job in batch_emulator.batches()] == [3, 3, 1, 2]
    assert Ledger(tmp_path / "cache" / "batches").records() == []


def test_two_runs_racing_submit_one_job_and_both_end_with_its_answers(
    tmp_path: Path, batch_emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between "nothing holds these requests" and the job's name being recorded is
    widened (a slow upload): the second run waits for the first, then resumes its job."""
    submit = GeminiBatches.submit

    def slow_submit(self: GeminiBatches, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(GeminiBatches, "submit", slow_submit)
    (tmp_path / "wf.yaml").write_text(many(6))
    summaries: list[RunSummary] = []
    racers = [
        threading.Thread(target=lambda: summaries.append(run(tmp_path, batch_emulator)))
        for _ in range(2)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert len(batch_emulator.batches()) == 1
    assert [statuses(s) for s in summaries] == [{"run": 6}, {"run": 6}]
    assert batch_emulator.api_calls() == []
    assert Ledger(tmp_path / "cache" / "batches").records() == []


def paid(emu: Emulator) -> int:
    """Requests paid for: interactive calls and batch items."""
    return len(emu.api_calls()) + sum(job.item_count for job in emu.batches())


@pytest.fixture
def slow_emulator(faults: BatchFaults) -> Iterator[Emulator]:
    """Interactive answers take 0.6 s (batch jobs as usual): a run is caught mid-request."""
    with Emulator(scale=0.0625, batch_faults=faults, faults=Faults(latency=0.6)) as emu:
        yield emu


def plain_run(root: Path, emu: Emulator, jobs: int) -> RunSummary:
    with Store(root / "cache") as store, Connection.emulator(url=emu.url) as connection:
        return run_workflow(
            load_workflow(root / "wf.yaml"), store, RunOptions(jobs=jobs), connection=connection
        )


def beside(first: Callable[[], RunSummary], then: Callable[[], RunSummary]) -> list[RunSummary]:
    """``first`` in a thread; ``then`` once ``first``'s requests are under way; both summaries."""
    summaries: dict[int, RunSummary] = {}
    racer = threading.Thread(target=lambda: summaries.update({0: first()}))
    racer.start()
    time.sleep(0.25)
    summaries[1] = then()
    racer.join()
    return [summaries[0], summaries[1]]


def test_a_batch_run_takes_what_a_plain_run_is_making_instead_of_submitting_it(
    tmp_path: Path, slow_emulator: Emulator
) -> None:
    (tmp_path / "wf.yaml").write_text(many(6))
    making, batched = beside(
        lambda: plain_run(tmp_path, slow_emulator, jobs=6),
        lambda: run(tmp_path, slow_emulator),
    )
    assert statuses(making) == {"run": 6}
    assert batched.ok and sum(statuses(batched).values()) == 6
    assert slow_emulator.batches() == [] and paid(slow_emulator) == 6


def test_an_auto_run_does_not_send_again_what_a_plain_run_is_sending(
    tmp_path: Path, slow_emulator: Emulator
) -> None:
    """A small group goes interactively with --batch=auto: not for steps another run sends."""
    (tmp_path / "wf.yaml").write_text(many(6))
    making, auto = beside(
        lambda: plain_run(tmp_path, slow_emulator, jobs=6),
        lambda: run(tmp_path, slow_emulator, settings=AUTO),
    )
    assert statuses(making) == {"run": 6}
    assert auto.ok and sum(statuses(auto).values()) == 6
    assert paid(slow_emulator) == 6


def test_a_plain_run_takes_what_an_auto_run_is_sending(
    tmp_path: Path, slow_emulator: Emulator
) -> None:
    """--batch=auto sends a small group at once, holding each step's key as a plain run does."""
    (tmp_path / "wf.yaml").write_text(many(6))
    auto, making = beside(
        lambda: run(tmp_path, slow_emulator, settings=AUTO),
        lambda: plain_run(tmp_path, slow_emulator, jobs=6),
    )
    assert statuses(auto) == {"run": 6}
    assert making.ok and sum(statuses(making).values()) == 6
    assert paid(slow_emulator) == 6


def test_a_plain_run_does_not_wait_while_another_run_uploads_its_jobs(
    tmp_path: Path, batch_emulator: Emulator
) -> None:
    """A run uploading jobs holds ``placing``; a plain run waits only for ``recording``."""
    (tmp_path / "wf.yaml").write_text(many(2))
    summaries: list[RunSummary] = []
    with Ledger(tmp_path / "cache" / "batches").placing():
        beside_it = threading.Thread(
            target=lambda: summaries.append(plain_run(tmp_path, batch_emulator, jobs=2))
        )
        beside_it.start()
        beside_it.join(timeout=60)  # not a speed check: without the fix it waits for ever
        finished = not beside_it.is_alive()
    beside_it.join()
    assert finished and statuses(summaries[0]) == {"run": 2}


def test_a_plain_run_leaves_what_a_batch_job_took_meanwhile_pending(
    tmp_path: Path, slow_emulator: Emulator
) -> None:
    """The plain run decided its steps before the batch run recorded its job: each step it
    comes to later is found in the job, and left for it."""
    (tmp_path / "wf.yaml").write_text(many(6))
    detach = BatchSettings(poll_seconds=0.05, detach=True)
    making, batched = beside(
        lambda: plain_run(tmp_path, slow_emulator, jobs=1),
        lambda: run(tmp_path, slow_emulator, settings=detach),
    )
    assert making.ok and batched.ok
    assert statuses(making).get("pending", 0) >= 1
    assert [job.requests for job in making.batch_jobs.values()] == [
        job.item_count for job in slow_emulator.batches()
    ]  # the job it left them for is told
    assert paid(slow_emulator) == 6  # each request once: interactively or in the job
    collected = plain_run(tmp_path, slow_emulator, jobs=6)
    assert collected.ok and paid(slow_emulator) == 6
    assert len(list((tmp_path / "out").iterdir())) == 6


# -- a run without --batch while jobs are open -------------------------------------------------


def plain(root: Path, emu: Emulator) -> RunSummary:
    with Store(root / "cache") as store, Connection.emulator(url=emu.url) as connection:
        return run_workflow(
            load_workflow(root / "wf.yaml"), store, RunOptions(), connection=connection
        )


def test_a_run_without_batch_collects_finished_jobs_and_sends_the_rest(
    tmp_path: Path, batch_emulator
) -> None:
    run(tmp_path, batch_emulator, many(4), BatchSettings(poll_seconds=0.05, detach=True))
    (tmp_path / "wf.yaml").write_text(many(5))
    while batch_emulator.batches()[0].state != "SUCCEEDED":
        time.sleep(0.02)
    summary = plain(tmp_path, batch_emulator)
    assert statuses(summary) == {"run": 5}
    assert len(batch_emulator.batches()) == 1
    assert len(batch_emulator.api_calls()) == 1  # only the new step
    assert Ledger(tmp_path / "cache" / "batches").records() == []


def test_a_run_without_batch_leaves_running_jobs_pending(
    tmp_path: Path, batch_emulator, faults: BatchFaults
) -> None:
    faults.push_job("stuck_running")
    text = many(2, f"fixed: {{kind: edit, model: {MODEL}, images: [s0], prompt: A hat.}}\n")
    run(tmp_path, batch_emulator, text, BatchSettings(poll_seconds=0.05, detach=True))
    summary = plain(tmp_path, batch_emulator)
    assert statuses(summary) == {"pending": 3}  # and the edit waits for its input
    assert batch_emulator.api_calls() == []
    [job] = summary.batch_jobs.values()
    assert job.state == "JOB_STATE_RUNNING" and job.pending


def test_steps_hold_their_input_images_only_while_their_line_is_written_or_answered(
    tmp_path: Path, batch_emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round of a thousand edits must not hold a thousand input images: each step lets go of
    its request once measured, makes it again for its line of the job's file (then lets go
    again), and for its answer."""
    from conftest import PHOTOS

    from gemflow.engine.batch import BatchExecutor

    writing: list[int] = []  # steps holding their requests, as each line is written
    waiting: list[int] = []  # input bytes the waiting steps hold, at each look at their job
    requests, seen = BatchExecutor._requests, BatchExecutor._seen

    def spy_requests(self: BatchExecutor, targets: Any) -> Any:
        pendings = {p for items in targets.values() for p, _ in items}
        for item in requests(self, targets):
            writing.append(sum(bool(p.calls) for p in pendings))
            yield item

    def spy_seen(self: BatchExecutor, opened: Any, job: Any) -> None:
        pendings = {p for items in opened.targets.values() for p, _ in items}
        waiting.append(sum(len(d) for p in pendings for c in p.calls for d, _ in c.request.images))
        seen(self, opened, job)

    monkeypatch.setattr(BatchExecutor, "_requests", spy_requests)
    monkeypatch.setattr(BatchExecutor, "_seen", spy_seen)
    shutil.copy(PHOTOS / "me.jpg", tmp_path / "me.jpg")
    edits = "".join(
        f"e{i}: {{kind: edit, model: {MODEL}, images: [me.jpg], prompt: Variant {i}.}}\n"
        for i in range(4)
    )
    summary = run(tmp_path, batch_emulator, many(0, edits))
    assert statuses(summary) == {"run": 4}  # their requests made again for the answers
    assert writing == [1, 1, 1, 1]
    assert waiting and set(waiting) == {0}
    assert batch_emulator.api_calls() == []
