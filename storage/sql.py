"""Reads through one door, whether or not a tournament is writing to the file.

Two ways to read a database file:

- `run_query(db, sql, params)`: one read-only query (its `?` bound to `params`), its rows as
  JSON-safe values. For everything that fits in memory: `arena sql`, `arena rank`. It is the
  sealed read path (storage/query.py): only queries, only on the database (files only with
  `allow_files`, and never through a running tournament), within `limits`.
- `read_connection(db, tables=...)`: a read-only DuckDB connection of the caller's own, for bulk
  reads that need one (temporary tables, COPY to Parquet: `arena pairs`). It is for our own
  code's SQL, not a user's: it may write files (COPY), though never the database.

The path a read takes:

1. (`run_query`) The query is parsed first; anything but a query (SELECT, WITH, SHOW, DESCRIBE,
   SUMMARIZE, or EXPLAIN of one) is refused (ReadOnlyQueryError).
2. A store open on the file in this very process answers it: a query on a fresh cursor, a bulk
   read from a snapshot it writes (below).
3. If `<db>.live.json` names a running process, the request goes to its live server over the Unix
   socket (storage/live.py), since DuckDB lets no other process open the file meanwhile. A query
   is answered there, sealed and within the server's limits (`LIVE_LIMITS`: 60 s, 100,000 rows,
   64 MiB, or less if the caller asks); for a bulk read the tournament copies the tables asked
   for, as of one moment, into a new file in a scratch folder beside the database
   (storage/snapshot.py), and the reader opens that copy read-only and deletes it when done. The
   tournament only copies; the reader's heavy work runs in the reader's process.
4. Otherwise, or if the live server has gone (the tournament is finishing), the file is opened
   `read_only=True`, for `run_query` with `sealed_config` (no external access, no extensions, a
   locked configuration). A file behind on migrations (written by an older debate-arena) is
   migrated first: the reader takes the write lock for a moment, migrates, and reopens read-only.
   If it cannot (a read-only filesystem; another reader keeps the file open past the wait), the
   file is read as it is, with the views added since as temporary views
   (`storage.schema.pending_views`). While the lock is held (a tournament opening or closing),
   this is retried for a few seconds, then StoreBusyError names the holder.

Every path of `run_query` returns the same JSON-safe values (storage/query.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from storage.errors import StoreError, first_line
from storage.live import LiveInfo, LiveUnavailable, query_live, read_live_info, snapshot_live
from storage.query import (
    DuckDBConfig,
    Params,
    QueryResult,
    ReadLimits,
    check_params,
    check_read_only,
    execute_read_query,
    sealed_config,
)
from storage.schema import apply_migrations, pending_migrations, pending_views
from storage.snapshot import table_names
from storage.store import busy_error, is_lock_error, open_store_at, resolve_db_path

LOCK_WAIT_S = 3.0
"""How long to keep trying a file locked by a process that has no live server (yet, or still)."""
_RETRY_S = 0.05
SNAPSHOT_PREFIX = ".arena-snapshot-"
"""Scratch folders of bulk reads while a tournament runs (`.arena-snapshot-<pid>-...`, the pid
of the reader); removed when the read ends, and by `arena.core.files.remove_stale_scratch` once
their reader is gone (killed)."""

T = TypeVar("T")


class _FileLocked(Exception):
    """Another process holds the file's lock; `migrating`: only the write lock was refused."""

    def __init__(self, message: str, migrating: bool = False) -> None:
        super().__init__(message)
        self.migrating = migrating


def run_query(
    path: str | os.PathLike[str],
    sql: str,
    params: Params = None,
    *,
    limits: ReadLimits | None = None,
    allow_files: bool = False,
    cancelled: Callable[[], bool] | None = None,
) -> QueryResult:
    """Run read-only `sql` on the database at `path`; the result of its last statement.

    `params` are bound to the query's `?` placeholders in order (JSON values: None, bool, int,
    float, str or lists of them; a query with parameters must be one statement). `limits` bound
    the query's time and its result's rows and bytes (None: none of the caller's own; a running
    tournament applies `LIVE_LIMITS` regardless). `allow_files` lets the query read other files
    (`read_csv`, `FROM 'x.parquet'`) when the file is read directly; a running tournament never
    does. The query is cancelled (QueryCancelled) as soon as `cancelled()` turns true, in a
    running tournament too (`arena sql` on Ctrl-C; a store of this very process excepted).
    Raises ReadOnlyQueryError for a statement that could write or a source that is not allowed,
    QueryLimitError past a limit, StoreError for a missing file or a bad query (DuckDB's message,
    one line), StoreBusyError if the file stays locked, TypeError for parameters that are not
    JSON values.
    """
    db = resolve_db_path(path)
    values = check_params(params)
    with duckdb.connect(config=sealed_config()) as scratch:
        check_read_only(scratch, sql, values)
    store = open_store_at(db)
    if store is not None and not store.closed:
        return store.query(sql, values)

    def on_file(con: duckdb.DuckDBPyConnection) -> QueryResult:
        try:
            return execute_read_query(
                con, sql, values, limits=limits, allow_files=allow_files, gone=cancelled
            )
        finally:
            con.close()

    return _read(
        db,
        lambda info: query_live(info, sql, values, limits, cancelled),
        on_file,
        advice="it is not answering live queries; try again when it has finished",
        sealed=sealed_config(allow_files),
    )


@contextmanager
def read_connection(
    path: str | os.PathLike[str],
    *,
    tables: Sequence[str] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    timeout_s: float | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only DuckDB connection to the database at `path` as of now, closed on exit.

    With no tournament on the file, the file itself (migrated first if it is behind). While a
    tournament (or a store in this process) holds it, a consistent snapshot of `tables` (all
    when None; only these are then readable) that the holder writes into a new folder in
    `scratch_dir` (default: beside the database), removed on exit. The connection may create
    temporary tables, set options and COPY to files; it cannot change the database.
    `timeout_s` bounds the wait for the tournament's snapshot (None: no limit).
    Raises StoreError for a missing file, StoreBusyError if the file stays locked.
    """
    db = resolve_db_path(path)
    with contextlib.ExitStack() as cleanup:

        def snapshot(take: Callable[[Path], object]) -> duckdb.DuckDBPyConnection:
            folder = _scratch_folder(db, scratch_dir)
            cleanup.callback(shutil.rmtree, folder, True)
            target = folder / "snapshot.duckdb"
            take(target)
            try:
                return duckdb.connect(str(target), read_only=True)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open the snapshot {target}: {exc}") from None

        store = open_store_at(db)
        if store is not None and not store.closed:
            con = snapshot(lambda target: store.snapshot(target, tables))
        else:
            con = _read(
                db,
                lambda info: snapshot(
                    lambda target: snapshot_live(info, target, tables, timeout_s)
                ),
                lambda con: con,
                advice="it is not answering live reads; try again when it has finished",
                sealed=None,
            )
        try:
            if tables:
                _check_tables(con, db, tables)
            yield con
        finally:
            con.close()


def _check_tables(con: duckdb.DuckDBPyConnection, db: Path, tables: Sequence[str]) -> None:
    """StoreError naming the first of `tables` that `con`'s database lacks: a DuckDB file that is
    not a debate-arena database (the tables a snapshot copies; views are not among them)."""
    present = set(table_names(con))
    missing = [t for t in tables if t not in present]
    if missing:
        raise StoreError(
            f"{os.fspath(db)} is not a debate-arena database (it has no table {missing[0]!r})"
        )


def _scratch_folder(db: Path, scratch_dir: str | os.PathLike[str] | None) -> Path:
    """A new private folder for a snapshot: in `scratch_dir`, else beside the database, else in
    the system's temporary folder."""
    places = [Path(scratch_dir)] if scratch_dir is not None else [db.parent, None]
    for place in places:
        try:
            prefix = f"{SNAPSHOT_PREFIX}{os.getpid()}-"
            return Path(tempfile.mkdtemp(prefix=prefix, dir=place)).resolve()
        except OSError as exc:
            if place is places[-1]:
                raise StoreError(f"cannot create a scratch folder for a snapshot: {exc}") from exc
    raise AssertionError("unreachable")


def _read(
    db: Path,
    live: Callable[[LiveInfo], T],
    on_file: Callable[[duckdb.DuckDBPyConnection], T],
    advice: str,
    sealed: DuckDBConfig | None,
) -> T:
    """`live(info)` from the tournament holding `db`, else `on_file` with a read-only connection
    (opened with the DuckDB settings `sealed`, if given).

    Retries while the file is locked without a live server (for `LOCK_WAIT_S`); a file that cannot
    be migrated within that time is read as it is.
    """
    if not db.is_file():
        raise StoreError(f"no database at {db}")
    unreachable: LiveInfo | None = None
    migrate = True
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        info = read_live_info(db)
        if info is not None and info != unreachable:
            try:
                return live(info)
            except LiveUnavailable:
                unreachable = info  # closing or gone: read the file instead
        try:
            con = _open_read_only(db, migrate=migrate, config=sealed)
        except _FileLocked as exc:
            if time.monotonic() >= deadline:
                if exc.migrating:
                    migrate = False  # someone keeps it open read-only: read it as it is
                    continue
                raise busy_error(db, str(exc), advice) from None
            time.sleep(_RETRY_S)
            continue
        return on_file(con)


def _open_read_only(
    db: Path, *, migrate: bool = True, config: DuckDBConfig | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the file `db` with DuckDB settings `config`, migrated first
    (with `migrate`) if it is behind.

    Raises `_FileLocked` while another process holds the lock it needs, StoreError when the file
    cannot be opened at all. Views of migrations the file still lacks are temporary views.
    """
    con = _connect_read_only(db, config)
    try:
        if migrate and pending_migrations(con):
            con.close()
            _migrate(db)
            con = _connect_read_only(db, config)
        with contextlib.suppress(duckdb.Error):  # unreadable migrations: the query will say
            for statement in pending_views(con):
                con.execute(statement)
    except duckdb.Error as exc:  # a damaged file (truncated) may open and then fail to read
        con.close()
        raise StoreError(f"cannot read {os.fspath(db)}: {first_line(str(exc))}") from None
    except BaseException:
        con.close()
        raise
    return con


def _connect_read_only(db: Path, config: DuckDBConfig | None = None) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(os.fspath(db), read_only=True, config=config or {})
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise _FileLocked(str(exc)) from None
        message = first_line(str(exc))
        if "different configuration" in message:
            message += (
                " (this process has it open already with other settings: a read_connection,"
                " or a query that reads files; close that first)"
            )
        raise StoreError(f"cannot open {os.fspath(db)}: {message}") from None


def _migrate(db: Path) -> None:
    """Apply the pending migrations under the write lock, held only for that."""
    try:
        con = duckdb.connect(os.fspath(db))
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise _FileLocked(str(exc), migrating=True) from None
        return  # not ours to write (a read-only filesystem or file): read it as it is
    try:
        apply_migrations(con)
    finally:
        con.close()
