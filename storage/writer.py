"""The background writer: rows enqueued from any thread, committed in batches by one thread.

`Writer.insert` checks a row against the catalog (table, columns, primary key) in the caller's
thread, so a programming mistake fails where it was made, and queues it. One thread commits the
queue every `flush_interval_s` (or as soon as `max_batch_rows` are waiting, or on `flush()`), as
one transaction of a few set-based statements, one per (table, column set, mode):

    INSERT OR IGNORE INTO t (a, n) SELECT unnest(CAST($1 AS VARCHAR[])), unnest(CAST($2 AS INT[]))

with one Python list per column as parameters. Measured on 2 cores with 1.5 kB strings:
`executemany` ~600 rows/s (it runs row by row), multi-row `VALUES (?, ?), (?, ?)` 4,000-7,000
rows/s for 15-column rows (DuckDB binds every `?` on its own), the column lists above
12,000-38,000 rows/s end to end (3 kB rows, mostly disk). The casts fix each list's type to its
column's, whatever Python values it holds.

Conflicts follow the row's `on_conflict`:

- `"ignore"`: `INSERT OR IGNORE`; the row that was there first stays (also within one batch).
- `"update"`: `ON CONFLICT (pk) DO UPDATE SET` the row's non-key columns; later values win.

DuckDB refuses to touch one row twice in one statement, so a batch is planned first: rows of the
same table, column set and mode share statements, and a key queued twice for the same statement
is merged. When a key comes back with a different column set or mode, the batch is cut there and
what came before runs first, so the result is always that of running the rows one by one, in
order (simplified on purpose: no merging across column sets, which would save little).

A failed commit stops the writer: **the writer is the source of truth**. The first failure (a
full disk, memory running out, a row the database refuses) puts it in a failed state at once:
the callbacks given to `on_failure` run (the runner stops sending calls whose results could not be
kept), and every later `insert`, `flush` and `close` raises the same `WriteError`, naming the file
and the cause. What was queued is then kept only as far as it can be kept *in order*: the failed
batch was rolled back, and its longest prefix that still commits is committed (halving the rest
until a single row fails); that row and every row queued after it are dropped (`lost` counts
them). So the rows in the file are always exactly a prefix of the rows queued, and a row never
survives one queued before it: a turn is queued after the `calls` row of its call, a debate's
`done` after its verdicts, so no turn references a call that is not stored, and no debate is done
without its rows. (An earlier version replayed a failed batch statement by statement and row by
row to spare the good rows, which could keep a turn and drop the `calls` row it references.)
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import duckdb

from storage.errors import StoreError, WriteError, write_error
from storage.schema import TableInfo

OnConflict = Literal["ignore", "update"]

ROWS_PER_STATEMENT = 5000
"""Bounds the size of one statement's parameters; a flush normally needs one per group."""


@dataclass(frozen=True)
class PendingRow:
    """A checked row waiting for the writer. `row` is in table column order."""

    table: str
    row: dict[str, object]
    on_conflict: OnConflict
    key: tuple[object, ...] | None
    """Primary-key values; None when the table has no primary key."""


def prepare_row(
    tables: Mapping[str, TableInfo],
    table: str,
    row: Mapping[str, object],
    on_conflict: str,
) -> PendingRow:
    """Check a row against the catalog and normalise its values.

    JSON columns accept any JSON-serialisable value (dumped here); timezone-aware datetimes for
    TIMESTAMP columns are converted to naive UTC, the convention of every timestamp in the schema.
    The row is copied, so the caller may change its dict afterwards.
    """
    if on_conflict not in ("ignore", "update"):
        raise StoreError(f"on_conflict must be 'ignore' or 'update', not {on_conflict!r}")
    info = tables.get(table)
    if info is None:
        raise StoreError(f"there is no table {table!r} (tables: {', '.join(sorted(tables))})")
    if not row:
        raise StoreError(f"an empty row cannot be inserted into {table}")
    unknown = [column for column in row if column not in info.columns]
    if unknown:
        raise StoreError(f"table {table} has no column {', '.join(map(repr, unknown))}")
    missing = [column for column in info.primary_key if column not in row]
    if missing:
        raise StoreError(f"a row for {table} needs its key column(s) {', '.join(missing)}")
    if on_conflict == "update" and not info.primary_key:
        raise StoreError(f"table {table} has no primary key, so rows cannot be updated")
    values = {
        column: _normalise(table, column, info.columns[column], row[column])
        for column in info.columns
        if column in row
    }
    key: tuple[object, ...] | None = None
    if info.primary_key:
        key = tuple(values[column] for column in info.primary_key)
        try:
            hash(key)
        except TypeError:
            raise StoreError(f"key values of a {table} row must be scalars, got {key!r}") from None
    mode: OnConflict = "update" if on_conflict == "update" else "ignore"
    return PendingRow(table, values, mode, key)


def _normalise(table: str, column: str, data_type: str, value: object) -> object:
    if value is None:
        return None
    if data_type == "JSON" and not isinstance(value, str):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{table}.{column} is JSON, and this value is not: {exc}") from None
    naive_timestamp = data_type.startswith("TIMESTAMP") and "TIME ZONE" not in data_type
    if naive_timestamp and isinstance(value, datetime) and value.tzinfo:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, list):
        return list(value)  # the caller may reuse its list once insert() has returned
    return value


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Chunk:
    """Rows of one table, column set and mode, written by one INSERT statement."""

    info: TableInfo
    columns: tuple[str, ...]
    on_conflict: OnConflict
    rows: Sequence[dict[str, object]]

    def sql(self) -> str:
        names = ", ".join(_quote(c) for c in self.columns)
        # One list parameter per column, zipped back into rows by unnest (see the module doc).
        select = ", ".join(
            f"unnest(CAST(${i} AS {self.info.columns[c]}[]))"
            for i, c in enumerate(self.columns, start=1)
        )
        table = _quote(self.info.name)
        key = self.info.primary_key
        if not key:
            return f"INSERT INTO {table} ({names}) SELECT {select}"
        updated = [c for c in self.columns if c not in key]
        if self.on_conflict == "ignore" or not updated:
            return f"INSERT OR IGNORE INTO {table} ({names}) SELECT {select}"
        sets = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in updated)
        target = ", ".join(_quote(c) for c in key)
        return (
            f"INSERT INTO {table} ({names}) SELECT {select} "
            f"ON CONFLICT ({target}) DO UPDATE SET {sets}"
        )

    def params(self) -> list[list[object]]:
        return [[row[c] for row in self.rows] for c in self.columns]

    def single_rows(self) -> list[Chunk]:
        return [Chunk(self.info, self.columns, self.on_conflict, [row]) for row in self.rows]


_Group = tuple[str, tuple[str, ...], OnConflict]


def plan_chunks(tables: Mapping[str, TableInfo], pending: Iterable[PendingRow]) -> list[Chunk]:
    """Statements that, run in order, give the same result as inserting the rows one by one."""
    chunks: list[Chunk] = []
    segment: dict[_Group, dict[object, dict[str, object]]] = {}
    owner: dict[tuple[str, object], _Group] = {}
    for serial, item in enumerate(pending):
        group: _Group = (item.table, tuple(item.row), item.on_conflict)
        key: object = item.key if item.key is not None else ("no key", serial)
        seen = owner.get((item.table, key))
        if seen is not None and seen != group:
            chunks.extend(_segment_chunks(tables, segment))
            segment, owner, seen = {}, {}, None
        rows = segment.setdefault(group, {})
        if seen is None:
            owner[(item.table, key)] = group
            rows[key] = item.row
        elif item.on_conflict == "update":
            rows[key] = item.row  # later values win
        # an "ignore" row whose key is already queued in this group is dropped: the first stays
    chunks.extend(_segment_chunks(tables, segment))
    return chunks


def _segment_chunks(
    tables: Mapping[str, TableInfo], segment: Mapping[_Group, Mapping[object, dict[str, object]]]
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for (table, columns, on_conflict), by_key in segment.items():
        rows = list(by_key.values())
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk_rows = rows[start : start + ROWS_PER_STATEMENT]
            chunks.append(Chunk(tables[table], columns, on_conflict, chunk_rows))
    return chunks


def execute_chunks(con: duckdb.DuckDBPyConnection, chunks: Sequence[Chunk]) -> None:
    """Run the statements in one transaction; roll back and re-raise on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        for chunk in chunks:
            con.execute(chunk.sql(), chunk.params())
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended it
            con.execute("ROLLBACK")
        raise


FailureCallback = Callable[[WriteError], object]
"""Called with the error when the writer fails; what it returns is ignored."""


class Writer:
    """Thread-safe queue of rows and the one thread that commits them.

    Created by `Store.open` on a cursor of its own; use `store.writer`.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: Mapping[str, TableInfo],
        *,
        path: str = "the database",
        flush_interval_s: float = 0.2,
        max_batch_rows: int = 1000,
        max_queue_rows: int = 100_000,
    ) -> None:
        self._con = con
        self._tables = dict(tables)
        self._path = path
        self._flush_interval_s = flush_interval_s
        self._max_batch_rows = max_batch_rows
        self._max_queue_rows = max_queue_rows
        self._cond = threading.Condition()
        self._queue: list[PendingRow] = []
        self._enqueued = 0
        self._done = 0
        self._flush_wanted = False
        self._closing = False
        self._stopped = False
        self._failure: WriteError | None = None
        self._callbacks: list[FailureCallback] = []
        self._thread = threading.Thread(target=self._run, name="storage-writer", daemon=True)
        self._thread.start()

    def insert(
        self, table: str, row: Mapping[str, object], on_conflict: OnConflict = "ignore"
    ) -> None:
        """Queue one row; returns at once. Thread-safe. Raises `WriteError` once the writer has
        failed (nothing more is accepted, see the module doc).

        Only when more than `max_queue_rows` rows are waiting (the database cannot keep up) does
        it block until the writer has caught up, so memory stays bounded.
        """
        pending = prepare_row(self._tables, table, row, on_conflict)
        with self._cond:
            self._raise_failure()
            if self._closing:
                raise StoreError("the store is closed; rows can no longer be written")
            while len(self._queue) >= self._max_queue_rows and not self._stopped:
                self._cond.wait()
                self._raise_failure()
            self._queue.append(pending)
            self._enqueued += 1
            if len(self._queue) >= self._max_batch_rows:
                self._cond.notify_all()

    def flush(self) -> None:
        """Block until every row queued before this call is committed; raises `WriteError` if
        the writer has failed (before or while waiting: then once it has kept what it could)."""
        with self._cond:
            target = self._enqueued
            if self._done < target:
                self._flush_wanted = True
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._done >= target or self._stopped)
            self._raise_failure()
            if self._done < target:
                raise WriteError("the writer stopped before the queued rows were written")

    def check(self) -> None:
        """Raise `WriteError` if the writer has failed; cheap enough to call before every model
        call (the runner does, so that no call is sent whose result could not be stored)."""
        if self._failure is not None:  # read without the lock: one reference, set once
            with self._cond:
                self._raise_failure()

    @property
    def failure(self) -> WriteError | None:
        """The error that stopped the writer, or None while it is healthy."""
        with self._cond:
            return self._failure

    def on_failure(self, callback: FailureCallback) -> Callable[[], None]:
        """Call `callback(error)` when the writer fails (at once if it already has); returns a
        function that unregisters it.

        The callback runs in the writer's thread, or in the caller's when the writer had already
        failed; it must be quick and thread-safe (an event loop's `call_soon_threadsafe`). Its
        exceptions are ignored: a failing callback must not hide the failure.
        """
        with self._cond:
            failure = self._failure
            if failure is None:
                self._callbacks.append(callback)
        if failure is not None:
            with contextlib.suppress(Exception):
                callback(failure)

        def unregister() -> None:
            with self._cond:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unregister

    @property
    def pending(self) -> int:
        """Rows queued and not yet committed (0 once the writer has stopped: see `lost`)."""
        with self._cond:
            return 0 if self._stopped else self._enqueued - self._done

    @property
    def lost(self) -> int:
        """Rows that were queued and will never be written, because the writer failed (exact
        once it has stopped: nothing is committed after the failed batch)."""
        with self._cond:
            return 0 if self._failure is None else self._enqueued - self._done

    def close(self) -> None:
        """Commit what is queued and stop the thread; raises `WriteError` if the writer failed
        (now or before: the failure is a state, reported to every caller)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            self._raise_failure()

    def _raise_failure(self) -> None:
        # Called with the lock held.
        if self._failure is not None:
            raise self._failure.again()

    def _fail(self, cause: BaseException, what: str = "") -> None:
        """Enter the failed state (the first cause wins) and tell the callbacks."""
        error = write_error(cause, self._path, what)
        with self._cond:
            if self._failure is not None:
                return
            self._failure = error
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()  # producers waiting for room, flushes waiting for rows
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback(error)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(
                        lambda: (
                            self._closing
                            or self._flush_wanted
                            or len(self._queue) >= self._max_batch_rows
                        ),
                        timeout=self._flush_interval_s,
                    )
                    batch, self._queue = self._queue, []
                    self._flush_wanted = False
                    closing = self._closing
                    self._cond.notify_all()  # producers waiting for room
                committed = self._commit(batch) if batch else 0
                with self._cond:
                    self._done += committed
                    self._cond.notify_all()
                if committed < len(batch) or closing:
                    # Failed: nothing more is written. Closing: nothing can be queued any more.
                    return
        except BaseException as exc:  # a bug or MemoryError: keep it for the callers
            self._fail(exc, "the writer thread failed")
        finally:
            with self._cond:
                self._stopped = True
                self._queue = []  # after a failure: rows that will never be written
                self._cond.notify_all()
            with contextlib.suppress(duckdb.Error):
                self._con.close()

    def _commit(self, batch: list[PendingRow]) -> int:
        """Commit `batch` in one transaction; the number of rows committed (all, or on a failure
        the longest prefix that could still be committed, after the writer has failed)."""
        try:
            execute_chunks(self._con, plan_chunks(self._tables, batch))
            return len(batch)
        except Exception as exc:
            self._fail(exc)  # first, so that nothing new is started while we salvage
        return self._commit_prefix(batch) if len(batch) > 1 else 0

    def _commit_prefix(self, batch: list[PendingRow]) -> int:
        """Commit the longest prefix of `batch` that commits, piece by piece: a piece that fails
        is halved until one row fails, and that row ends it. Returns the rows committed."""
        start, size = 0, max(len(batch) // 2, 1)
        while start < len(batch):
            piece = batch[start : start + size]
            try:
                execute_chunks(self._con, plan_chunks(self._tables, piece))
            except Exception:
                if len(piece) == 1:
                    break
                size = len(piece) // 2
                continue
            start += len(piece)
        return start
