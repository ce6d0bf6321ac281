"""``gemflow emulator``: run the Gemini API emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click


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
    type=click.FloatRange(min=0),
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
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds advertised by 429/503 (RetryInfo and Retry-After).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the fault draws.")
@click.option(
    "--api-key",
    "api_key",
    default=None,
    metavar="KEY",
    help="Accept only this API key (default: any non-empty key).",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiply image sides by this (small values make benchmarks cheap).",
)
@click.option(
    "--rewrite",
    "rewrite",
    default=None,
    metavar="MODES",
    help="Behave like a service that rewrites prompts: any of system (a hidden system prompt), "
    "prefix (words put before yours), paraphrase (your words reworded), comma-separated.",
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
) -> None:
    """Serve a deterministic Gemini API emulator for tests and demos.

    Images are drawn from the request (the prompt in large type, inputs as thumbnails, the model,
    ratio, size and take in a corner). The n-th identical request gets take n, a new picture, as a
    real model would answer; with a seed, or --same-takes, equal requests give equal bytes. Stop
    with Ctrl-C.
    """
    from gemflow.emulator import Emulator, Faults  # Pillow is heavy: keep `gemflow --help` fast
    from gemflow.emulator.rewrite import Rewriter

    try:
        rates = Faults.parse(fault_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    faults = Faults(latency=latency, rates=rates, retry_delay=retry_delay, seed=seed)
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
