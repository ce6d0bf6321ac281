"""Batch mode from the command line: --batch and --batch=auto as typed, the jobs in --json (run,
--detach, batch status), and what is pending in dry runs and the HTML report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project

from gemflow.emulator import Emulator
from gemflow.emulator.batch_faults import BatchFaults

MODEL = "gemini-3.1-flash-image"
FAST = ("--batch-poll", "0.05")


def many(count: int, extra: str = "") -> str:
    steps = "".join(
        f"  s{i}: {{kind: generate, model: {MODEL}, prompt: Picture {i}.}}\n" for i in range(count)
    )
    return f"version: 1\nsteps:\n{steps}{extra}"


EDIT = f"  fixed: {{kind: edit, model: {MODEL}, images: [s0], prompt: Add a hat.}}\n"


@pytest.fixture
def faults() -> BatchFaults:
    return BatchFaults(running_seconds=0.05)


@pytest.fixture
def project(tmp_path: Path, faults: BatchFaults) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    with Emulator(scale=0.0625, batch_faults=faults) as emu:
        yield Project(root, emu)


def test_batch_before_a_target_still_reads_it_as_a_target(project: Project) -> None:
    project.write(many(3))
    doc = project.run_json("--batch", "s1", *FAST)
    assert [step["id"] for step in doc["steps"]] == ["s1"]
    assert [job["requests"] for job in doc["batch_jobs"]] == [1]


def test_batch_auto_as_typed_and_batch_min(project: Project) -> None:
    project.write(many(3))
    doc = project.run_json("--batch=auto", *FAST)
    assert doc["batch_jobs"] == [] and len(project.calls()) == 3  # 3 < 20: sent at once
    project.write(many(6))
    doc = project.run_json("--batch-min", "3", *FAST)  # implies --batch=auto
    assert [job["requests"] for job in doc["batch_jobs"]] == [3]
    assert len(project.calls()) == 3


def test_an_unknown_batch_mode_is_a_usage_error(project: Project) -> None:
    project.write(many(1))
    result = project.run("--batch=half", expect=2)
    assert "--batch=half" in result.output
    assert project.run("--batch-max-mb", "5", expect=2).exit_code == 2  # needs --batch


def test_json_names_the_run_s_jobs_and_their_states(project: Project) -> None:
    project.write(many(3))
    doc = project.run_json("--batch", *FAST)
    [job] = doc["batch_jobs"]
    assert job["name"].startswith("batches/") and job["display_name"].startswith("gemflow-")
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["pending"] is False
    assert job["steps"] == ["s0", "s1", "s2"] and job["requests"] == 3 and job["model"] == MODEL
    assert doc["totals"]["batch_jobs_pending"] == 0


def test_detach_says_how_many_jobs_are_pending_in_json_and_words(project: Project) -> None:
    project.write(many(3))
    result = project.run("--json", "--batch", "--detach", "--batch-max-requests", "2")
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["totals"]["steps"]["pending"] == 3
    assert doc["totals"]["batch_jobs_pending"] == 2
    assert all(job["pending"] and job["name"] for job in doc["batch_jobs"])
    assert {s["why"]["job"] for s in doc["steps"]} == {j["name"] for j in doc["batch_jobs"]}
    assert "2 batch jobs pending" in result.stderr
    status = json.loads(project.cli("batch", "status", str(project.workflow), "--json").stdout)
    assert status["pending"] == 2
    assert sorted(j["name"] for j in status["jobs"]) == sorted(j["name"] for j in doc["batch_jobs"])
    assert sorted(s for j in status["jobs"] for s in j["steps"]) == ["s0", "s1", "s2"]
    words = project.cli("batch", "status", str(project.workflow)).stdout
    assert words.count("steps: s") == 2 and "2 jobs pending" in words


def test_a_dry_run_shows_the_pending_job_and_the_steps_waiting_on_it(
    project: Project, faults: BatchFaults
) -> None:
    faults.push_job("stuck_running")
    project.write(many(2, EDIT))
    detached = project.run_json("--batch", "--detach", *FAST)
    [job] = detached["batch_jobs"]
    plan = project.run_json("--dry-run")
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["s0"]["status"] == "pending" and steps["s0"]["why"] == {
        "code": "in-batch",
        "job": job["name"],
    }
    assert steps["fixed"]["status"] == "pending"
    assert steps["fixed"]["why"] == {"code": "input-in-batch", "step": "s0"}
    assert [j["name"] for j in plan["batch_jobs"]] == [job["name"]]
    assert plan["batch_jobs"][0]["state"] == "JOB_STATE_PENDING"  # as last seen: nothing is sent
    # the job bills its two requests at half price, the edit would cost full price
    assert plan["totals"]["usd"] == pytest.approx(2 * 0.067 / 2 + (0.067 + 560 * 0.5e-6), 1e-3)
    assert plan["totals"]["api_calls"] == 1
    assert project.calls() == []


def test_the_html_report_shows_the_pending_job(project: Project, faults: BatchFaults) -> None:
    project.write(many(1))
    project.run()  # a result on this service: the report judges against it
    faults.push_job("stuck_running")
    project.write(many(3, EDIT))
    [job] = project.run_json("--batch", "--detach", *FAST)["batch_jobs"]
    report = project.root / "wf.report.html"
    project.cli("report", str(project.workflow), "-o", str(report))
    html = report.read_text()
    assert 'id="batch"' in html and job["name"] in html
    assert "batch job pending" in html and "steps waiting on it" in html
    assert html.count(f"in batch job {job['name']}") == 3  # s1, s2, and the edit of s0
    assert job["steps"] == ["fixed", "s1", "s2"]


def test_the_run_s_own_report_lists_its_jobs(project: Project) -> None:
    project.write(many(2))
    report = project.root / "run.html"
    project.run("--batch", *FAST, "--report", str(report))
    html = report.read_text()
    assert 'id="batch"' in html and "succeeded" in html and "batch job pending" not in html


# -- gemflow batch resume | cancel ------------------------------------------------------------------


def test_resume_takes_run_s_options_and_collects(project: Project) -> None:
    project.write(many(3))
    project.run("--batch", "--detach")
    wf, url = str(project.workflow), project.emulator.url
    result = project.cli("batch", "resume", wf, "--base-url", url, *FAST, "--json")
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["totals"]["steps"]["run"] == 3
    assert project.calls() == [] and len(project.emulator.batches()) == 1  # collected, not sent
    assert project.cli("batch", "status", wf).stdout.strip() == "no batch jobs pending"


def test_cancel_cancels_the_jobs_of_the_endpoint_it_is_given_and_names_the_others(
    project: Project, faults: BatchFaults
) -> None:
    faults.push_job("stuck_running")
    project.write(many(2))
    project.run("--batch", "--detach")
    wf, url = str(project.workflow), project.emulator.url
    assert f"  on {url}" in project.cli("batch", "status", wf).stdout
    wrong = project.cli("batch", "cancel", wf, expect=3)  # Google's API: not where it went
    assert "0 jobs cancelled" in wrong.stdout
    assert f"1 job left: sent to {url}, not google; cancel with --base-url {url}" in wrong.stderr
    assert "Traceback" not in wrong.output
    [job] = project.emulator.batches()
    assert job.state == "RUNNING"
    done = project.cli("batch", "cancel", wf, "--base-url", url)
    assert f"cancelled {job.name}" in done.stdout and "1 job cancelled" in done.stdout
    assert [j.state for j in project.emulator.batches()] == ["CANCELLED"]
    assert project.cli("batch", "status", wf).stdout.strip() == "no batch jobs pending"
    again = project.run_json()  # the next run asks again, interactively
    assert again["totals"]["steps"]["run"] == 2 and len(project.calls()) == 2
