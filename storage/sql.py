"""`run_query`: read-only SQL on a database file, whether or not a tournament is running on it.

The path a query takes:

1. It is parsed first; anything but SELECT/EXPLAIN is refused (ReadOnlyQueryError).
2. A store open on the file in this very process answers it on a fresh cursor.
3. If `<db>.live.json` names a running process, the query goes to its live server over the Unix
   socket (storage/live.py), since DuckDB lets no other process open the file meanwhile.
4. Otherwise, or if the live server has gone (the tournament is finishing), the file is opened
   `read_only=True`; views added by migrations the file has not had yet are created as temporary
   views first (`storage.schema.pending_views`), so a reader sees the same names either way.
   While the lock is still held (a tournament opening or closing), this is retried for a few
   seconds, then StoreBusyError names the holder.

Both paths return the same JSON-safe values (storage/query.py).
"""

from __future__ import annotations

import os
import time

import duckdb

from storage.errors import StoreError, first_line
from storage.live import LiveInfo, LiveUnavailable, query_live, read_live_info
from storage.query import QueryResult, check_read_only, execute_read_query
from storage.schema import pending_views
from storage.store import busy_error, is_lock_error, open_store_at, resolve_db_path

LOCK_WAIT_S = 3.0
"""How long to keep trying a file locked by a process that has no live server (yet, or still)."""
_RETRY_S = 0.05


class _FileLocked(Exception):
    pass


def run_query(
    path: str | os.PathLike[str], sql: str, *, timeout_s: float | None = None
) -> QueryResult:
    """Run read-only `sql` on the database at `path`; the result of its last statement.

    `timeout_s` bounds the wait for a running tournament's answer (None: no limit).
    Raises ReadOnlyQueryError for a statement that could write, StoreError for a missing file or
    a bad query (DuckDB's message, one line), StoreBusyError if the file stays locked.
    """
    db = resolve_db_path(path)
    with duckdb.connect() as scratch:
        check_read_only(scratch, sql)
    store = open_store_at(db)
    if store is not None and not store.closed:
        return store.query(sql)
    if not db.is_file():
        raise StoreError(f"no database at {db}")
    unreachable: LiveInfo | None = None
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        info = read_live_info(db)
        if info is not None and info != unreachable:
            try:
                return query_live(info, sql, timeout_s)
            except LiveUnavailable:
                unreachable = info  # closing or gone: read the file instead
        try:
            return _query_file(db, sql)
        except _FileLocked as exc:
            if time.monotonic() >= deadline:
                advice = "it is not answering live queries; try again when it has finished"
                raise busy_error(db, str(exc), advice) from None
        time.sleep(_RETRY_S)


def _query_file(db: os.PathLike[str], sql: str) -> QueryResult:
    try:
        con = duckdb.connect(os.fspath(db), read_only=True)
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise _FileLocked(str(exc)) from None
        raise StoreError(f"cannot open {os.fspath(db)}: {first_line(str(exc))}") from None
    try:
        try:
            for statement in pending_views(con):
                con.execute(statement)
        except duckdb.Error:
            pass  # a file we cannot read the migrations of: the query will say what is wrong
        return execute_read_query(con, sql)
    finally:
        con.close()
