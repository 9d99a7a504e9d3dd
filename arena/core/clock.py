"""The one clock every recorded timestamp comes from."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """UTC now, naive (DuckDB TIMESTAMP)."""
    return datetime.now(UTC).replace(tzinfo=None)
