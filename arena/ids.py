"""Content-derived identifiers.

Every id the arena writes is a hash of canonical JSON (sorted keys, no spaces, UTF-8), so the same
debate or the same request always gets the same id, and resuming a run never duplicates a row.

>>> content_id("run", "topic-1", "a", "b", 0)
'f1ad39ef9783504a'
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_id(*parts: Any, length: int = 16) -> str:
    """A short hex id derived from the canonical JSON of `parts`."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()
    return digest[:length]


def request_hash(model: str, messages: list[dict[str, str]], settings: dict[str, Any]) -> str:
    """The id of a model request: the same model, messages and settings give the same hash."""
    return content_id(model, canonical_json(messages), settings, length=32)
