"""How fast the team cache answers: 1,000 keys looked up on S3 at once (moto on loopback).

    python bench/remote.py                 # 1,000 keys, best of 5
    python bench/remote.py --keys 5000 --runs 3 --out /tmp/remote.json

A look-up is what a run does for keys missing locally, and what ``gemflow cache pull`` does: one
GET of each key's record (``gemflow.cache.remote.RemoteStore.records``), 64 in flight, never a
listing. The remote is moto in a subprocess of its own (so it does not share this process's
interpreter lock with s3fs), its output sent nowhere. Two things about moto's server are not
about S3 and are set aside: Werkzeug, its HTTP server, closes the connection after every answer
(S3 keeps connections open), so moto's WSGI app is served by Tornado's HTTP server instead (keep-
alive, one thread); and moto lists its own package folder on every request to find the service a
request is for (about half of its time per request), so that lookup is memoised.
``--plain-moto`` starts ``moto_server`` as shipped, for comparison. It reports; it is
not a test: a missed target still exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

TARGET = 2.0  # seconds for 1,000 keys
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "remote.json"
REGION = "eu-west-1"
SERVER = """
import asyncio, functools, sys
import moto.backends
listed = moto.backends.list_of_moto_modules
moto.backends.list_of_moto_modules = functools.cache(lambda: tuple(listed()))
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from tornado.httpserver import HTTPServer
from tornado.wsgi import WSGIContainer

async def serve():
    HTTPServer(WSGIContainer(DomainDispatcherApplication(create_backend_app))).listen(
        int(sys.argv[2]), sys.argv[1]
    )
    await asyncio.Event().wait()

asyncio.run(serve())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(plain: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = (
        ["-m", "moto.server", "-H", "127.0.0.1", "-p"] if plain else ["-c", SERVER, "127.0.0.1"]
    )
    server = subprocess.Popen(
        [sys.executable, *command, str(port)],
        stdout=subprocess.DEVNULL,  # an undrained pipe stalls moto after ~1,000 requests
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.1)


def timed(work: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plain-moto", action="store_true", help="moto as shipped")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    server, endpoint = start_moto(args.plain_moto)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        import s3fs

        from gemflow.cache.remote import Entry, RemoteStore
        from gemflow.cache.store import stored_meta

        s3fs.S3FileSystem(skip_instance_cache=True, client_kwargs={"region_name": REGION}).mkdir(
            "bench"
        )
        url = "s3://bench/team"
        keys = [f"sha256:{i:064x}" for i in range(args.keys)]
        absent = [f"sha256:{i + args.keys:064x}" for i in range(args.keys)]
        entries = []
        for i, key in enumerate(keys):
            data = f"picture {i} ".encode() * 64  # about 1 KB each
            entries.append(
                Entry(key, stored_meta({"request": {"prompt": f"#{i}"}}, data, {}), data)
            )
        store = RemoteStore(url)
        push = timed(lambda: store.push(entries), 1)[0]

        def look_up() -> None:
            client = RemoteStore(url)  # a new client each time, as a run starts
            assert all(client.records(keys).values())
            client.close()

        def miss() -> None:
            client = RemoteStore(url)
            assert not any(client.records(absent).values())
            client.close()

        def fetch() -> None:
            client = RemoteStore(url)
            assert all(client.fetch(keys).values())
            client.close()

        look_up()  # warm-up: imports, bytecode
        figures = {
            "look-up (hits)": timed(look_up, args.runs),
            "look-up (misses)": timed(miss, args.runs),
            "fetch (records + blobs)": timed(fetch, max(1, args.runs // 2)),
        }
    finally:
        server.terminate()
        server.wait(timeout=10)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"remote look-up bench: {args.keys:,} keys on moto (loopback), load {load:.2f}")
    print(f"  push (create-only, record + blob each)   {push:6.2f} s  (once)")
    for name, times in figures.items():
        print(
            f"  {name:40} {min(times):6.2f} s  best of {len(times)}, median {statistics.median(times):.2f}"
        )
    best = min(figures["look-up (hits)"])
    scaled_target = TARGET * args.keys / 1_000
    verdict = "ok" if best < scaled_target else "MISS"
    print(f"  target: {args.keys:,} look-ups under {scaled_target:g} s: {verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "keys": args.keys,
        "load": load,
        "plain_moto": args.plain_moto,
        "push_seconds": push,
        "figures": {
            name: {"best": min(t), "median": statistics.median(t)} for name, t in figures.items()
        },
        "target_seconds": scaled_target,
        "ok": best < scaled_target,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
