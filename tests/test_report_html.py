"""The offline HTML report (``gemflow report``, ``gemflow run --report``): one self-contained file
built from the run's summary, the lock file and the store; what each part shows, and its size."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FAKE_KEY, Project

from gemflow.cache.local import Store
from gemflow.cli import cli
from gemflow.emulator import Emulator
from gemflow.report.html.lineage import Node, svg
from gemflow.report.html.since import word_diff

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  a:
    kind: generate
    prompt: A pancake shaped like a skull.
    description: the base picture
  b:
    kind: edit
    images: [a, photos/me.jpg]
    prompt: Put the pancake on a plate.
  small: {kind: resize, image: b, width: 64, output: out/small.webp}
  many:
    kind: generate
    prompt: A waffle, ${matrix.style}.
    matrix: {style: [plain, fancy], aspect_ratio: ["1:1", "16:9"]}
  sheet: {kind: composite, images: [many], columns: 2, labels: true}
  unsafe: {kind: generate, prompt: "[[emulator:image_safety]] No.", expect: refusal}
"""


class Page(HTMLParser):
    """What a test looks at in a report: elements by id, images, links, script and text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str]] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.scripts = 0
        self.external: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "id" in found:
            self.ids[found["id"]] = {"tag": tag, **found}
        if tag == "img":
            self.images.append(found)
        if tag == "a" and "href" in found:
            self.links.append(found["href"])
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if found.get(name, "").startswith(("http:", "https:", "//")):
                self.external.append(found[name])
        if tag == "link":
            self.external.append(str(found))


@pytest.fixture
def built(project: Project) -> Project:
    project.add_photo()
    project.write(WORKFLOW)
    project.run("--report")
    return project


def report_of(project: Project, name: str = "wf.report.html") -> tuple[str, Page]:
    text = (project.root / name).read_text(encoding="utf-8")
    return text, Page(text)


def test_run_report_writes_one_self_contained_file_beside_the_workflow(built: Project) -> None:
    text, page = report_of(built)
    assert page.external == []  # no CDN, no stylesheet or script from elsewhere
    assert page.scripts == 1
    assert "default-src 'none'" in text  # and the page may load nothing else
    embedded = [img for img in page.images if "src" in img]
    assert embedded and all(img["src"].startswith("data:image/webp;base64,") for img in embedded)
    assert "out/a.png" in page.links and "out/small.webp" in page.links  # full size: linked
    assert "photos/me.jpg" in page.links
    assert FAKE_KEY not in text


def test_every_step_has_a_card_that_says_what_it_is(built: Project) -> None:
    text, page = report_of(built)
    for anchor in ("step-a", "step-b", "step-small", "step-sheet", "step-unsafe"):
        assert anchor in page.ids
    assert "group-many" in page.ids
    assert "the base picture" in text  # the description
    assert "A pancake shaped like a skull." in text  # the resolved prompt
    assert 'href="#step-a">a</a>' in text  # b's input links to a's card
    assert 'href="#group-many">many</a> (4 instances)' in text  # the grid's inputs: one link
    assert "refused as expected (IMAGE_SAFETY)" in text
    assert "I can&#x27;t create that image" in text  # what the model said instead, from the store
    assert "Here is your image." in text  # the model's reply, from the store
    assert "<dt>version</dt><dd>gemini-3.1-flash-image</dd>" in text and "<dt>tokens</dt>" in text


def test_a_matrix_step_is_a_grid_with_rows_captioned_with_what_differs(built: Project) -> None:
    text, page = report_of(built)
    assert 'class="row-title">style=plain</h4>' in text
    assert 'class="row-title">style=fancy</h4>' in text
    assert '<span class="caption">aspect_ratio=16:9</span>' in text
    assert page.ids["step-many-style-plain-aspect_ratio-1-1"]["class"].startswith("cell")


def test_an_edit_slides_between_its_first_input_and_its_result(built: Project) -> None:
    text, _ = report_of(built)
    card = text[text.index('id="step-b"') :]
    card = card[: card.index("</article>")]
    assert 'class="ba-range" type="range"' in card
    assert 'class="ba-before"' in card and 'class="ba-after"' in card
    assert 'data-same="sha256:' in card  # a's picture, embedded once, in a's card
    assert "before: a →" in card


def test_the_lineage_links_each_step_to_its_card(built: Project) -> None:
    text, page = report_of(built)
    assert '<a class="node' in text and 'href="#step-b"' in text
    assert 'href="#group-many"' in text
    assert "photos/me.jpg" in text  # an input file is a node too
    assert page.ids["lineage"]["tag"] == "section"


def test_money_spent_by_the_run_then_saved_by_the_cache(built: Project) -> None:
    text, _ = report_of(built)
    assert "spent by this run" in text and "saved by the cache" not in text
    built.cli("report", str(built.workflow))
    text, _ = report_of(built)
    assert "saved by the cache" in text and "spent by this run" not in text
    assert "statuses from a dry run" in text
    assert ">up to date<" in text


def test_report_sends_nothing_and_needs_no_key(built: Project) -> None:
    sent = len(built.calls())
    result = CliRunner().invoke(
        cli,
        ["report", str(built.workflow)],
        env={"GEMFLOW_CACHE_DIR": str(built.root / "cache")},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert len(built.calls()) == sent
    assert "report: " in result.stderr and "wf.report.html" in result.stderr


def test_a_step_that_would_run_says_why_and_what_it_would_cost(built: Project) -> None:
    built.write(WORKFLOW.replace("shaped like a skull", "shaped like a bat"))
    built.cli("report", str(built.workflow))
    text, _ = report_of(built)
    assert ">would run<" in text and "prompt changed" in text
    assert "to bring it up to date (estimate)" in text
    assert "<del>skull.</del><ins>bat.</ins>" in text  # the workflow's prompt against the result's


def test_thumbnails_are_made_once_and_kept_in_the_store(
    built: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(built.root / "cache") as store:
        keys = store.keys()
        thumbs = [k for k in keys if k.startswith("thumb/")]
        digest = built.lock["steps"]["a"]["digest"]
        assert f"thumb/{digest}" in thumbs
    from gemflow.imaging import operations

    encoded: list[str] = []
    real = operations.encode
    monkeypatch.setattr(
        operations, "encode", lambda image, fmt, **kw: encoded.append(fmt) or real(image, fmt, **kw)
    )
    built.cli("report", str(built.workflow))
    assert encoded == []


def test_a_fresh_clone_without_a_cache_is_reported_from_the_lock_and_the_files(
    built: Project, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("wf.yaml", "wf.lock", "out", "photos"):
        source = built.root / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, clone / name)
    result = CliRunner().invoke(
        cli, ["report", str(clone / "wf.yaml")], catch_exceptions=False, env={}
    )
    assert result.exit_code == 0, result.output
    text = (clone / "wf.report.html").read_text()
    assert "no cache at" in text
    assert ">up to date<" in text and ">would run<" not in text
    assert "data:image/webp;base64," in text  # thumbnails from the files on disk
    assert "Here is your image." not in text  # the replies live in the store only
    assert not (clone / "cache").exists()


def test_user_text_is_escaped(project: Project) -> None:
    project.write(
        """\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          x:
            kind: generate
            prompt: "<script>alert('hi')</script> & <img src=x onerror=alert(1)> \\"quoted\\""
            description: "<b>bold</b>"
        """
    )
    project.run("--report")
    text, page = report_of(project)
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt; &amp; &lt;img src=x" in text
    assert page.scripts == 1


def test_a_structured_prompt_is_shown_as_pretty_json(project: Project) -> None:
    project.write(
        """\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          sheet:
            kind: generate
            prompt: {character: {class: Paladin, age: 30}}
        """
    )
    project.run("--report")
    text, _ = report_of(project)
    assert '<pre class="prompt json"><code>{\n  &quot;character&quot;: {' in text


def test_a_probe_shows_its_verdict_and_evidence_sheet(project: Project) -> None:
    project.write(
        """\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          check: {kind: probe, prompt: A kitten with purple fur., probes: [current, after]}
        """
    )
    project.run("--report")
    text, page = report_of(project)
    assert 'verdict: <b class="verdict-' in text
    assert "out/check.probe/sheet.png" in page.links
    assert "evidence sheet" in text


def test_since_a_revision_shows_what_changed_word_by_word(project: Project) -> None:
    first = """\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          a: {kind: generate, prompt: A pancake shaped like a skull.}
          b: {kind: generate, prompt: A waffle., aspect_ratio: "1:1"}
        """
    project.write(first)
    project.run()
    git = ["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "wf.lock"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    project.write(
        first.rstrip(" ").replace("a skull", "a bat").replace('"1:1"', '"16:9"')
        + "          c: {kind: generate, prompt: New.}\n"
    )
    project.run()
    project.cli("report", str(project.workflow), "--since", "HEAD")
    text, page = report_of(project)
    assert "changes" in page.ids
    changes = text[text.index('id="changes"') : text.index('id="steps"')]
    assert "<del>skull.</del><ins>bat.</ins>" in changes
    assert "<b>aspect_ratio</b> 1:1 → 16:9" in changes
    assert 'href="#step-c">c</a></h3>\n<p>new since HEAD</p>' in changes


def test_since_an_unknown_revision_is_a_usage_error(built: Project) -> None:
    result = built.cli("report", str(built.workflow), "--since", "nope", expect=2)
    assert "--since nope: not a commit" in result.output


def test_report_path_must_be_an_html_file(built: Project) -> None:
    result = built.run("--report", "a", expect=2)
    assert "the report is an .html file (targets go before --report)" in result.output


def test_report_goes_where_it_is_told_with_relative_links(built: Project) -> None:
    built.cli("report", str(built.workflow), "-o", str(built.root / "docs" / "r.html"))
    _, page = report_of(built, "docs/r.html")
    assert "../out/a.png" in page.links and "../photos/me.jpg" in page.links


def test_open_shows_it_in_the_browser(built: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    built.cli("report", str(built.workflow), "--open")
    assert opened == [(built.root / "wf.report.html").as_uri()]


def test_the_emulator_lock_is_reported_when_it_is_the_only_one(
    tmp_path: Path, emulator: Emulator
) -> None:
    (tmp_path / "wf.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            steps:
              a: {kind: generate, model: gemini-3.1-flash-image, prompt: A pear.}
            """
        )
    )
    env = {"GEMFLOW_CACHE_DIR": str(tmp_path / "cache")}
    run = CliRunner().invoke(cli, ["run", str(tmp_path / "wf.yaml"), "--emulator"], env=env)
    assert run.exit_code == 0, run.output
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "wf.yaml")], env=env)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "wf.report.html").read_text()
    assert "lock file wf.emulator.lock" in text and ">up to date<" in text


def test_a_hundred_api_steps_make_a_report_under_three_megabytes(tmp_path: Path) -> None:
    """Thumbnails are small and embedded; full-size pictures are linked. The emulator draws at
    half size here (512 px), so each thumbnail has the card's full 320 px."""
    lines = ["version: 1", "defaults: {model: gemini-3.1-flash-image}", "steps:"]
    for n in range(50):
        lines.append(f"  g{n}: {{kind: generate, prompt: A lighthouse at dusk number {n}.}}")
        lines.append(f"  e{n}: {{kind: edit, images: [g{n}], prompt: Add boat number {n}.}}")
    workflow = tmp_path / "wf.yaml"
    workflow.write_text("\n".join(lines) + "\n")
    env = {"GEMINI_API_KEY": FAKE_KEY, "GEMFLOW_CACHE_DIR": str(tmp_path / "cache")}
    with Emulator(scale=0.5) as emu:
        argv = ["run", str(workflow), "--base-url", emu.url, "--report", "-q"]
        result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = tmp_path / "wf.report.html"
    size = report.stat().st_size
    assert size < 3_000_000, f"{size:,} bytes"
    page = Page(report.read_text())
    assert len([img for img in page.images if img.get("src")]) == 100  # each picture once
    widths = {max(int(img["width"]), int(img["height"])) for img in page.images if "width" in img}
    assert widths == {320}


def test_word_diff_keeps_spaces_and_marks_what_changed() -> None:
    assert word_diff("a red boat\non the sea", "a blue boat\non the sea") == [
        ("=", "a "),
        ("-", "red"),
        ("+", "blue"),
        ("=", " boat\non the sea"),
    ]
    assert word_diff("same", "same") == [("=", "same")]


def test_lineage_places_a_step_after_its_inputs_even_when_written_before_them() -> None:
    nodes = [Node("s:late", "late", "#late", "run", "late"), Node("s:a", "a", "#a", "cached", "a")]
    drawn = svg(nodes, [("s:a", "s:late")])
    late = drawn.index(">late</text>")
    first = drawn.index(">a</text>")
    assert first < late  # columns are drawn left to right: a's column first
    assert 'href="#late"' in drawn and "<path" in drawn


def test_lineage_escapes_names() -> None:
    drawn = svg([Node("f:x", "<evil>", None, "file", "<evil>")], [])
    assert "<evil>" not in drawn and "&lt;evil&gt;" in drawn


def test_cache_info_counts_the_thumbnails_apart_from_results(built: Project) -> None:
    with Store(built.root / "cache") as store:
        keys = store.keys()
    thumbs = sum(k.startswith("thumb/") for k in keys)
    results = sum(k.startswith(("sha256:", "refusal/")) for k in keys)
    out = built.cli("cache", "info").stdout
    assert f"{results} step results, 0 single calls, {thumbs} thumbnails" in out


def test_a_detailed_picture_gets_a_lower_quality_to_fit_its_byte_budget(tmp_path: Path) -> None:
    from PIL import Image, ImageFilter

    from gemflow.cache.memory import MemoryStore
    from gemflow.imaging.operations import encode
    from gemflow.report.html.thumbs import CARD_BYTES, QUALITIES, Source, make_thumbs

    noise = Image.effect_noise((320, 320), 50).filter(ImageFilter.GaussianBlur(0.75))
    picture = Image.merge(
        "RGB", (noise, noise.rotate(90), noise.transpose(Image.Transpose.ROTATE_180))
    )
    assert len(encode(picture, "webp", quality=QUALITIES[0])) > CARD_BYTES  # it needs to
    path = tmp_path / "detailed.png"
    picture.save(path)
    [thumb] = make_thumbs([Source("", path)], MemoryStore()).values()
    webp = base64.b64decode(thumb.uri.removeprefix("data:image/webp;base64,"))
    assert len(webp) <= CARD_BYTES


def test_run_json_stays_one_document_on_stdout_with_report(built: Project) -> None:
    result = built.run("--json", "--report")
    assert json.loads(result.stdout)["ok"]
    assert "report: " in result.stderr


def test_report_path_with_several_workflows_is_refused_before_anything_runs(
    built: Project,
) -> None:
    other = built.root / "other.yaml"
    other.write_text(
        "version: 1\nsteps:\n  x: {kind: generate, prompt: A fig., model: nano-banana}\n"
    )
    sent = len(built.calls())
    result = built.cli(
        "run",
        str(built.workflow),
        str(other),
        "--base-url",
        built.emulator.url,
        "--report",
        "r.html",
        expect=2,
    )
    assert "--report PATH goes with one workflow" in result.output
    assert len(built.calls()) == sent
