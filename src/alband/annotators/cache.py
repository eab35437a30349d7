"""On-disk cache of LLM response bodies, keyed by what was asked.

The key is ``sha256`` of the canonical JSON (sorted keys, no whitespace) of
the provider, the endpoint, and the request body (model, prompt, parameters).
Credentials are never part of the key or of the stored entry: an entry holds
the provider, model, the key's inputs' digest and the response *body* as the
provider returned it, after :func:`alband.annotators.redaction.redact_secrets`
(the secrets passed to :meth:`ResponseCache.put` and credential-shaped tokens:
a model may echo a key in its answer).

A hit replays the stored body through the same parser as a live response, so
a replayed annotation equals the live one except for its cost (``$0``: nothing
was billed) and ``extra["cache_hit"]``. Writes are atomic (temporary file +
``os.replace``), so concurrent workers and interrupted runs never leave a
half-written entry; an unreadable entry counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from alband.annotators.redaction import redact_secrets
from alband.errors import AlbandError

_FORMAT = 1


def request_key(provider: str, endpoint: str, request: dict) -> str:
    """Hex ``sha256`` of the canonical JSON of ``(provider, endpoint, request)``."""
    payload = json.dumps(
        {"provider": provider, "endpoint": endpoint, "request": request},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """Response bodies under ``directory/<key[:2]>/<key>.json``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AlbandError(f"response cache directory {self.directory}: cannot create it ({err})") from err

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The stored response body for ``key``, or ``None`` (missing or unreadable)."""
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != _FORMAT or entry.get("key") != key:
            return None
        body = entry.get("body")
        return body if isinstance(body, str) else None

    def put(self, key: str, body: str, *, provider: str, model: str, secrets: tuple[str, ...] = ()) -> None:
        """Store ``body`` for ``key`` atomically (secrets and credential shapes redacted first)."""
        body = redact_secrets(body, secrets)
        entry = {"format": _FORMAT, "key": key, "provider": provider, "model": model, "body": body}
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=target.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    json.dump(entry, stream, ensure_ascii=False)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise AlbandError(f"response cache {target}: cannot write it ({err})") from err
