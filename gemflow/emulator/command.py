"""``gemflow emulator``: run the Gemini API emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from gemflow.clicktypes import FiniteFloat
from gemflow.emulator.batch_faults import EXPIRE_SECONDS  # neither imports Pillow
from gemflow.emulator.files import MAX_FILE_BYTES


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=int,
    default=8765,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request to FILE (never image bytes or keys).",
)
@click.option(
    "--latency",
    type=FiniteFloat(min=0),
    default=0.0,
    show_default=True,
    help="Seconds added to every generate request.",
)
@click.option(
    "--faults",
    "fault_spec",
    default="",
    metavar="SPEC",
    help='Random fault rates, e.g. "429=0.1,503=0.05". Names: 429 500 503 escapes '
    "image_safety prohibited no_image text_only blocked echo_key html truncated bad_base64 "
    "bad_usage not_an_image hang trickle.",
)
@click.option(
    "--retry-delay",
    type=FiniteFloat(min=0),
    default=1.0,
    show_default=True,
    help="Seconds advertised by 429/503 (RetryInfo and Retry-After).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for the fault draws (requests, batch jobs and batch items).",
)
@click.option(
    "--api-key",
    "api_key",
    default=None,
    metavar="KEY",
    help="Accept only this API key (default: any non-empty key).",
)
@click.option(
    "--scale",
    type=FiniteFloat(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiply image sides by this (small values make benchmarks cheap).",
)
@click.option(
    "--rewrite",
    "rewrite",
    default=None,
    metavar="MODES",
    help="Behave like a real service, for trying probe steps offline; comma-separated modes. "
    "What the service does to prompts: system (a hidden system prompt), prefix (words put before "
    "yours), paraphrase (reworded, canary dropped), reword (reworded and reordered, canary kept), "
    "expand (style words appended). How its model letters text: literal (the whole prompt, "
    "instruction and all), invent (makes up text for before/after), noisy (~5% of characters "
    "wrong, lettering and reading), refuse (refuses some requests). Not both of "
    "paraphrase/reword, literal/invent.",
)
@click.option(
    "--same-takes",
    is_flag=True,
    help="Answer identical requests with identical pictures (by default the n-th identical "
    "request without a seed gets a new one, take n, like a real model).",
)
@click.option(
    "--extra-model",
    "extra_models",
    multiple=True,
    metavar="ID",
    help="Also serve this model id (not in the models table). Repeatable.",
)
@click.option(
    "--batch-pending",
    type=FiniteFloat(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="A batch job stays PENDING this long.",
)
@click.option(
    "--batch-running",
    type=FiniteFloat(min=0),
    default=0.2,
    show_default=True,
    metavar="SECONDS",
    help="Then RUNNING at least this long (and until its items are answered).",
)
@click.option(
    "--batch-expire",
    type=FiniteFloat(min=0),
    default=EXPIRE_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="A batch job not finished this long after its creation EXPIRES (the real 48 h).",
)
@click.option(
    "--batch-faults",
    "batch_fault_spec",
    default="",
    metavar="SPEC",
    help='Random batch job fault rates, e.g. "fail=0.1,expire=0.05". Names: fail expire '
    "stuck_pending stuck_running.",
)
@click.option(
    "--batch-item-faults",
    "item_fault_spec",
    default="",
    metavar="SPEC",
    help='Random batch item fault rates, e.g. "14=0.1,3=0.01,missing=0.02": an item error '
    "with google.rpc code 3 4 8 13 or 14, or missing (left out of the output).",
)
@click.option(
    "--batch-error-details",
    is_flag=True,
    help="Give batch item errors a details list of objects, as google.rpc.Status allows "
    "(google-genai's batches.get() then fails to parse an inline job).",
)
@click.option(
    "--max-file-bytes",
    type=click.IntRange(min=1),
    default=MAX_FILE_BYTES,
    show_default=True,
    help="The largest file the Files API accepts (a batch's JSONL input).",
)
def emulator_command(
    host: str,
    port: int,
    log_path: Path | None,
    latency: float,
    fault_spec: str,
    retry_delay: float,
    seed: int,
    api_key: str | None,
    scale: float,
    extra_models: tuple[str, ...],
    rewrite: str | None,
    same_takes: bool,
    batch_pending: float,
    batch_running: float,
    batch_expire: float,
    batch_fault_spec: str,
    item_fault_spec: str,
    batch_error_details: bool,
    max_file_bytes: int,
) -> None:
    """Serve a deterministic Gemini API emulator for tests and demos.

    Images are drawn from the request (the prompt in large type, inputs as thumbnails, the model,
    ratio, size and take in a corner). The n-th identical request gets take n, a new picture, as a
    real model would answer; with a seed, or --same-takes, equal requests give equal bytes. It
    also runs batch jobs (the Batch API, with files uploaded through the Files API). Stop with
    Ctrl-C.
    """
    from gemflow.emulator import Emulator, Faults  # Pillow is heavy: keep `gemflow --help` fast
    from gemflow.emulator.batch_faults import BatchFaults
    from gemflow.emulator.rewrite import Rewriter

    try:
        rates = Faults.parse(fault_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    faults = Faults(latency=latency, rates=rates, retry_delay=retry_delay, seed=seed)
    try:
        job_rates = BatchFaults.parse_jobs(batch_fault_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--batch-faults") from None
    try:
        item_rates = BatchFaults.parse_items(item_fault_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--batch-item-faults") from None
    batch_faults = BatchFaults(
        pending_seconds=batch_pending,
        running_seconds=batch_running,
        expire_seconds=batch_expire,
        job_rates=job_rates,
        item_rates=item_rates,
        error_details=batch_error_details,
        seed=seed,
    )
    try:
        rewriter = Rewriter.parse(rewrite) if rewrite is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rewrite") from None
    emulator = Emulator(
        host=host,
        port=port,
        log_path=log_path,
        faults=faults,
        api_key=api_key,
        scale=scale,
        extra_models=extra_models,
        rewrite=rewriter,
        vary_takes=not same_takes,
        batch_faults=batch_faults,
        max_file_bytes=max_file_bytes,
    )
    try:
        emulator.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    keys = "the key given with --api-key" if api_key is not None else "any non-empty API key"
    click.echo(
        f"gemflow emulator listening on {emulator.url} (accepts {keys}; Ctrl-C to stop). "
        f"Point gemflow or the SDK at it: export GOOGLE_GEMINI_BASE_URL={emulator.url}",
        err=True,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how this command ends: exit 0
        emulator.serve_forever()
