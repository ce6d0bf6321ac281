"""Single API calls cached by request, for steps that make several (see ``gemflow.kinds.base.Call``).

The key of a call is ``"call/" + sha256(canonical_json({"call": 1, "request": request.describe(),
"sample": n, "service": ...}))``: the request exactly as sent (images by digest), which sample of it
this is, and the service, as in the step key contract (``gemflow.engine.keys``).
"""

from __future__ import annotations

from dataclasses import asdict

from gemflow.cache.store import ResultStore, blob
from gemflow.engine.keys import canonical_json, digest
from gemflow.providers.base import ApiRequest, ApiResponse

CALL_FORMAT = 1


class StoreCallCache:
    """``step``: the key of the step the calls are made for. Each call records the keys of every
    step that used it (``steps`` in its metadata), so ``gemflow cache gc`` keeps the calls of the
    steps that lock files still refer to."""

    def __init__(
        self,
        store: ResultStore,
        service: str | None,
        *,
        refresh: bool = False,
        step: str | None = None,
    ) -> None:
        self.store = store
        self.service = service
        self.refresh = refresh  # a forced step asks again, and its answers replace the old ones
        self.step = step

    def key(self, request: ApiRequest, sample: int) -> str:
        material = {"call": CALL_FORMAT, "request": request.describe(), "sample": sample}
        if self.service is not None:
            material["service"] = self.service
        return "call/" + digest(canonical_json(material))

    def get(self, request: ApiRequest, sample: int) -> ApiResponse | None:
        if self.refresh:
            return None
        key = self.key(request, sample)
        meta = self.store.meta(key)
        if meta is None:
            return None
        image = blob(self.store, key) if meta["response"]["has_image"] else None
        if meta["response"]["has_image"] and image is None:
            return None  # corrupt: dropped by the store, so ask again
        if self.step is not None and self.step not in meta.get("steps", []):
            self._tie(key, image)
        fields = {k: v for k, v in meta["response"].items() if k != "has_image"}
        return ApiResponse(image=image, **fields)

    def put(self, request: ApiRequest, sample: int, response: ApiResponse) -> None:
        fields = asdict(response)
        fields.pop("image")
        fields["has_image"] = response.image is not None
        key = self.key(request, sample)
        with self.store.lock(key):
            old = self.store.meta(key) or {}
            meta = {"response": fields, "steps": _with(old.get("steps", []), self.step)}
            self.store.put(key, response.image or b"", meta)

    def _tie(self, key: str, image: bytes | None) -> None:
        """Record that this step uses the stored call ``key`` too."""
        with self.store.lock(key):
            meta = self.store.meta(key)
            if meta is None:
                return
            kept = {k: v for k, v in meta.items() if k not in ("digest", "size", "attachments")}
            kept["steps"] = _with(meta.get("steps", []), self.step)
            self.store.put(key, image or b"", kept)


def _with(steps: list[str], step: str | None) -> list[str]:
    return sorted({*steps, step}) if step is not None else list(steps)
