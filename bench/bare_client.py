"""The bare google-genai client: ``bench.py``'s peer for gemflow's first build.

    python bench/bare_client.py --base-url URL --prompts prompts.json --jobs 32 --out out/

``prompts.json`` maps names to prompts. Each prompt is one ``generate_content`` request with the
model and config gemflow sends for a plain ``generate`` step, sent by a pool of ``--jobs`` threads
sharing one client; each answer's image is written to ``out/<name>.png``. No cache, no lock file,
no retries: what any client must do at the least, so that ``bench.py`` can time gemflow against it.
The key comes from ``GEMINI_API_KEY``. Exits 1 if any request fails or brings no image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODEL = "gemini-3.1-flash-image"  # bench.MODEL: the workflow's default model
MODALITIES = ["TEXT", "IMAGE"]  # what gemflow asks for on an image step


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--prompts", type=Path, required=True, help="JSON: name -> prompt")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    # Imported here, as gemflow imports it only once a step must run: both pay for it, timed.
    from google import genai
    from google.genai import types

    prompts: dict[str, str] = json.loads(args.prompts.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    client = genai.Client(
        api_key=os.environ["GEMINI_API_KEY"],
        http_options=types.HttpOptions(base_url=args.base_url),
    )
    config = types.GenerateContentConfig(response_modalities=MODALITIES)

    def generate(name: str) -> str | None:
        """Send ``name``'s request and write its image; what went wrong, if anything."""
        contents: list[Any] = [prompts[name]]  # as gemflow sends a prompt
        try:
            response = client.models.generate_content(
                model=args.model, contents=contents, config=config
            )
        except Exception as exc:  # every failure is reported; none stops the others
            return f"{name}: {type(exc).__name__}: {exc}"
        # As gemflow reads an answer: the first candidate's last image that is not a "thought".
        candidate = response.candidates[0] if response.candidates else None
        parts = candidate.content.parts if candidate and candidate.content else None
        images = [
            part.inline_data.data
            for part in parts or []
            if not part.thought and part.inline_data is not None and part.inline_data.data
        ]
        if not images:
            return f"{name}: the answer holds no image"
        (args.out / f"{name}.png").write_bytes(images[-1])
        return None

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        failures = [failure for failure in pool.map(generate, prompts) if failure]
    client.close()
    for failure in failures:
        print(f"bare_client: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
