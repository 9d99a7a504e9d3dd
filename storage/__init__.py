"""storage: one DuckDB file per tournament, one writer, and SQL as the public read interface.

The engine opens a `Store`, records everything through `store.writer` (batched, in a background
thread, durable within a second) and calls `store.serve_live()` so that `run_query` from other
processes (`arena sql`) can read the file while the tournament holds it. The tables are described
for users in docs/schema.md and created by the numbered migrations in storage/migrations/.

    from storage import Store, run_query

    with Store.open("arena.duckdb") as store:
        store.serve_live()
        store.writer.insert("calls", {...})
    run_query("arena.duckdb", "SELECT count(*) FROM calls")

Modules: store (Store), writer (Writer, batching and conflicts), sql (run_query), query
(read-only checks, JSON-safe results), live (socket server and client), schema (migrations,
catalog), errors.
"""

from storage.errors import ReadOnlyQueryError, StoreBusyError, StoreError, WriteError
from storage.query import QueryResult
from storage.schema import (
    Migration,
    TableInfo,
    apply_migrations,
    load_migrations,
    pending_views,
)
from storage.sql import run_query
from storage.store import Store
from storage.writer import OnConflict, Writer

__all__ = [
    "Migration",
    "OnConflict",
    "QueryResult",
    "ReadOnlyQueryError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "TableInfo",
    "WriteError",
    "Writer",
    "apply_migrations",
    "load_migrations",
    "pending_views",
    "run_query",
]
