"""storage: one DuckDB file per tournament, one writer, and SQL as the public read interface.

The engine opens a `Store`, records everything through `store.writer` (batched, in a background
thread, durable within a second) and calls `store.serve_live()` so that readers in other
processes can read the file while the tournament holds it: `run_query` for queries (`arena sql`,
`arena rank`), `read_connection` for bulk reads on a DuckDB connection of their own (`arena
pairs`). The tables are described for users in docs/schema.md and created by the numbered
migrations in storage/migrations/.

    from storage import Store, read_connection, run_query

    with Store.open("arena.duckdb") as store:
        store.serve_live()
        store.writer.insert("calls", {...})
    run_query("arena.duckdb", "SELECT count(*) FROM calls WHERE model = ?", ["sim-a"])
    with read_connection("arena.duckdb", tables=["calls"]) as con:
        con.execute("COPY calls TO 'calls.parquet'")

Modules: store (Store), writer (Writer, batching and conflicts), sql (run_query, read_connection),
query (read-only checks, parameters, JSON-safe results), live (socket server and client),
snapshot (consistent copies for bulk readers), schema (migrations, catalog), errors.
"""

from storage.errors import ReadOnlyQueryError, StoreBusyError, StoreError, WriteError
from storage.query import QueryResult
from storage.schema import (
    Migration,
    TableInfo,
    apply_migrations,
    load_migrations,
    pending_migrations,
    pending_views,
)
from storage.sql import read_connection, run_query
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
    "pending_migrations",
    "pending_views",
    "read_connection",
    "run_query",
]
