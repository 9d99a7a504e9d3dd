"""The Store: a tournament's one read-write connection to its DuckDB file.

`Store.open` takes DuckDB's file lock (waiting a few seconds, since a reader may hold it briefly),
applies pending migrations and starts the background writer (storage/writer.py). Three ways in:

- `store.writer.insert(...)`: what the engine records as it happens; non-blocking, batched.
- `store.execute` / `store.insert_rows`: synchronous writes for run set-up, committed at once.
- `store.read`: synchronous reads for the engine (resume, progress).

Other readers come in through `run_query` and `read_connection` (storage/sql.py), which this
process answers with `query` and `snapshot`, and other processes through the live server.

The synchronous calls first flush the writer, so they see (and come after) every row queued
before them. Each of the three users of the database has its own cursor: the caller's thread the
store's connection (behind a lock), the writer thread one cursor, live queries one cursor each.

A process can open a file only once: DuckDB would hand a second `connect` the same database
silently, which would make two writers; this is refused with StoreBusyError like a second process.
Stores still open at interpreter exit are closed (and so flushed) by an atexit hook.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from storage.errors import (
    WRITE_FAILED,
    StoreBusyError,
    StoreError,
    WriteError,
    failure_reason,
    first_line,
    write_error,
)
from storage.live import (
    LiveServer,
    live_info_path,
    live_info_tmp_path,
    read_live_info,
    remove_stale_sockets,
)
from storage.query import Params as QueryParams
from storage.query import QueryResult, execute_read_query
from storage.schema import TableInfo, apply_migrations, read_tables
from storage.snapshot import write_snapshot
from storage.writer import OnConflict, Writer, execute_chunks, plan_chunks, prepare_row

Params = Sequence[object] | Mapping[str, object] | None

_open_stores: dict[Path, Store] = {}
_opening: set[Path] = set()
_registry_lock = threading.Lock()
_LOCK_RETRY_S = 0.1


def resolve_db_path(path: str | os.PathLike[str]) -> Path:
    """The absolute path that identifies a database (the live socket name is derived from it)."""
    return Path(path).expanduser().resolve()


def open_store_at(db: Path) -> Store | None:
    """The store open in this process on `db` (an absolute path), if any."""
    with _registry_lock:
        return _open_stores.get(db)


def is_lock_error(exc: duckdb.Error) -> bool:
    """Whether DuckDB refused to open a file because another process holds its lock."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def busy_error(db: Path, duckdb_message: str, advice: str) -> StoreBusyError:
    """A one-line StoreBusyError naming the process that holds `db`, when it can be told."""
    info = read_live_info(db)
    if info is not None:
        return StoreBusyError(
            f"{db.name} is in use by another tournament (pid {info.pid}); {advice}", info.pid
        )
    match = re.search(r"PID (\d+)", duckdb_message)
    pid = int(match.group(1)) if match else None
    holder = f"another process (pid {pid})" if pid else "another process"
    return StoreBusyError(f"{db.name} is in use by {holder}; {advice}", pid)


def resource_failure(error: Exception, db: Path, what: str = "") -> StoreError:
    """`error` as the error to raise: a `WriteError` when its cause is a full disk or memory
    running out (a `StoreError` or `OSError` whose message says so), so that the command reports
    it as a failure to write, not as a mistake in its input; else a `StoreError` as it was."""
    if isinstance(error, WriteError) or failure_reason(error) == WRITE_FAILED:
        return error if isinstance(error, StoreError) else StoreError(f"{what}: {error}")
    return write_error(error, str(db), what)


def check_not_truncated(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """StoreError if the file `db` (open on `con`) is shorter than the blocks in use it holds.

    DuckDB opens a truncated file without complaint and fails only when it reads a missing block,
    which may be in the middle of a run (and then looks like a failed write). The blocks in use
    times the block size is a lower bound of a whole file's size (each has its own place in the
    file; the headers before the blocks are left out, to stay safe if their size changes). Not
    the header's total count: that includes free blocks, and DuckDB cuts free blocks off the end
    of the file at a checkpoint (a whole file of 21 used and 4 free blocks has 21 blocks' bytes).
    """
    row = con.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size()"
        " WHERE database_name = current_database()"
    ).fetchone()
    if row is None:
        return
    expected = int(row[0]) * int(row[1])
    size = db.stat().st_size
    if size < expected:
        raise StoreError(
            f"{db} is damaged: it has {size:,} bytes, and its header counts {int(row[1])} blocks"
            f" in use of {int(row[0]):,} bytes (truncated?)"
        )


def _connect(db: Path, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(db))
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise StoreError(f"cannot open {db}: {first_line(str(exc))}") from exc
            # A live tournament will not let go soon; only a brief reader is worth waiting for.
            if read_live_info(db) is not None or time.monotonic() >= deadline:
                advice = "wait for it to finish or use another --db"
                raise busy_error(db, str(exc), advice) from None
            time.sleep(_LOCK_RETRY_S)


class Store:
    """A DuckDB file opened read-write, with its writer thread. Create with `Store.open`."""

    def __init__(
        self,
        path: Path,
        con: duckdb.DuckDBPyConnection,
        tables: Mapping[str, TableInfo],
        writer: Writer,
    ) -> None:
        self._path = path
        self._con = con
        self._tables = dict(tables)
        self._writer = writer
        self._lock = threading.RLock()
        self._live: LiveServer | None = None
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        wait_s: float = 5.0,
        flush_interval_s: float = 0.2,
        max_batch_rows: int = 1000,
    ) -> Store:
        """Open (creating it and its directory if needed) and migrate the database at `path`.

        If another process holds the file, retries for `wait_s` seconds and then raises
        StoreBusyError naming it.
        """
        db = resolve_db_path(path)
        with _registry_lock:
            if db in _open_stores or db in _opening:
                raise StoreBusyError(f"{db.name} is already open in this process", os.getpid())
            _opening.add(db)  # waiting for the lock below must not block run_query's lookups
        try:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {db.parent}: {exc.strerror}") from exc
            con = _connect(db, wait_s)
            try:
                try:
                    check_not_truncated(con, db)
                    apply_migrations(con)
                    tables = read_tables(con)
                except duckdb.Error as exc:  # a damaged file (truncated) may open, then fail
                    raise StoreError(f"cannot open {db}: {first_line(str(exc))}") from None
                # We hold the file lock, so a live.json here was left by a run that was killed;
                # so were sockets whose process is gone (named with its pid; any database's).
                for leftover in (live_info_path(db), live_info_tmp_path(db)):
                    leftover.unlink(missing_ok=True)
                remove_stale_sockets()
                writer = Writer(
                    con.cursor(),
                    tables,
                    path=str(db),
                    flush_interval_s=flush_interval_s,
                    max_batch_rows=max_batch_rows,
                )
            except BaseException:
                con.close()
                raise
            store = cls(db, con, tables, writer)
            with _registry_lock:
                _open_stores[db] = store
            return store
        except StoreError as exc:  # a full disk may show first when the file is opened
            failure = resource_failure(exc, db, "opening it")
            if failure is exc:
                raise
            raise failure from exc
        finally:
            with _registry_lock:
                _opening.discard(db)

    @property
    def path(self) -> Path:
        """Absolute path of the database file."""
        return self._path

    @property
    def writer(self) -> Writer:
        """The background writer (see storage/writer.py)."""
        return self._writer

    @property
    def tables(self) -> dict[str, TableInfo]:
        """Tables, columns and primary keys, as read at open."""
        return dict(self._tables)

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._closed

    def read(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Run a query on the store's own connection; sees every row queued before the call."""
        self._writer.flush()
        with self._lock:
            self._check_open()
            try:
                return self._con.execute(sql, params).fetchall()
            except duckdb.Error as exc:
                raise StoreError(first_line(str(exc))) from exc

    def execute(self, sql: str, params: Params = None) -> None:
        """Run a statement and commit it at once (after the rows already queued).

        Raises `WriteError` when the file cannot be written (a full disk, memory running out) or
        the writer has failed, `StoreError` for anything else."""
        self._writer.flush()
        with self._lock:
            self._check_open()
            try:
                self._con.execute(sql, params)
            except duckdb.Error as exc:
                raise self._error(exc, first_line(str(exc))) from exc

    def insert_rows(
        self,
        table: str,
        rows: Sequence[Mapping[str, object]],
        on_conflict: OnConflict = "ignore",
    ) -> None:
        """Write rows now, in one transaction: all of them or (raising StoreError, `WriteError`
        when the file cannot be written) none."""
        pending = [prepare_row(self._tables, table, row, on_conflict) for row in rows]
        if not pending:
            return
        self._writer.flush()
        with self._lock:
            self._check_open()
            try:
                execute_chunks(self._con, plan_chunks(self._tables, pending))
            except duckdb.Error as exc:
                message = f"could not write {len(pending)} rows to {table}: {first_line(str(exc))}"
                raise self._error(exc, message) from exc

    def query(self, sql: str, params: QueryParams = None) -> QueryResult:
        """A read-only query on a fresh cursor, exactly as `run_query` answers it."""
        with self._lock:
            self._check_open()
            cursor = self._con.cursor()
        try:
            return execute_read_query(cursor, sql, params)
        finally:
            cursor.close()

    def snapshot(self, target: Path, tables: Sequence[str] | None = None) -> dict[str, int]:
        """Copy `tables` (all when None), as of now, into the new DuckDB file `target`
        (storage/snapshot.py); rows copied per table. Sees every row queued before the call."""
        self._writer.flush()
        with self._lock:
            self._check_open()
            cursor = self._con.cursor()
        try:
            return write_snapshot(cursor, target, tables)
        finally:
            cursor.close()

    def serve_live(self) -> None:
        """Answer `run_query` from other processes while this store is open (idempotent)."""
        with self._lock:
            self._check_open()
            if self._live is None:
                try:
                    self._live = LiveServer(self._path, self._con)
                except (OSError, StoreError) as exc:  # its socket and info file are files too
                    failure = resource_failure(exc, self._path, "serving live reads")
                    if failure is exc:
                        raise
                    raise failure from exc

    def close(self) -> None:
        """Flush and stop the writer, stop the live server, checkpoint, close (idempotent).

        Raises the writer's error, if it failed, after everything is closed. After a failed write
        the file is not checkpointed: the disk may be full, and what was committed is safe in the
        write-ahead log (`<file>.wal`), which DuckDB replays when the file is next opened.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.ExitStack() as later:  # runs last-in first-out, even after an error
            later.callback(self._unregister)
            later.callback(self._close_connection)
            if self._live is not None:
                later.callback(self._live.stop)
            self._writer.close()

    def _close_connection(self) -> None:
        with self._lock:
            try:
                if self._writer.failure is None:
                    self._con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                raise self._error(exc, f"checkpoint failed: {first_line(str(exc))}") from exc
            finally:
                self._con.close()

    def _error(self, exc: duckdb.Error, message: str) -> StoreError:
        """A failed statement as the error to raise: `WriteError` when the file could not be
        written (disk full, out of memory, an I/O or fatal error), else `StoreError(message)`."""
        resource = (duckdb.IOException, duckdb.FatalException, duckdb.OutOfMemoryException)
        if isinstance(exc, resource) or failure_reason(exc) != WRITE_FAILED:
            return write_error(exc, str(self._path))
        return StoreError(message)

    def _unregister(self) -> None:
        with _registry_lock:
            _open_stores.pop(self._path, None)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store for {self._path.name} is closed")

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Store {self._path} ({state})>"


@atexit.register
def _close_open_stores() -> None:
    with _registry_lock:
        stores = list(_open_stores.values())
    for store in stores:
        # A last resort for stores a program left open: their errors have nobody to go to (a
        # failed writer has already raised its error to every caller that wrote).
        with contextlib.suppress(StoreError):
            store.close()
