"""Content-derived identifiers.

Every id the arena writes is a hash of canonical JSON (sorted keys, no spaces, UTF-8), so the same
debate or the same request always gets the same id, and resuming a run never duplicates a row.

>>> content_id("run", "topic-1", "a", "b", 0)
'f1ad39ef9783504a'
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_id(*parts: Any, length: int = 16) -> str:
    """A short hex id derived from the canonical JSON of `parts`."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()
    return digest[:length]


@lru_cache(maxsize=4096)
def _settings_json(settings: tuple[tuple[str, Any], ...]) -> bytes:
    return canonical_json(dict(settings)).encode("utf-8")


def request_hash(model: str, messages: list[dict[str, str]], settings: dict[str, Any]) -> str:
    """The id of a model request: the same model, messages and settings give the same hash.

    Messages are fed to the hash length-prefixed rather than as JSON: it is as unambiguous, and
    several times faster on long transcripts (this runs for every call).
    """
    digest = hashlib.sha256()
    key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(settings.items()))
    for data in (model.encode("utf-8"), _settings_json(key)):
        digest.update(b"%d:" % len(data))
        digest.update(data)
    for message in messages:
        for part in (message["role"], message["content"]):
            data = part.encode("utf-8")
            digest.update(b"%d:" % len(data))
            digest.update(data)
    return digest.hexdigest()[:32]
