"""Snapshots: a consistent copy of some tables in a new DuckDB file, taken by the file's holder.

Bulk readers (`arena pairs` streams millions of rows through temporary tables and COPY) need a
DuckDB connection of their own, and DuckDB lets no other process open a file while a tournament
holds it for writing. So the holder copies what the reader needs into a new file the reader names:

    ATTACH '<path>' AS arena_snapshot_<hex>;
    BEGIN TRANSACTION;
    CREATE TABLE arena_snapshot_<hex>."turns" AS SELECT * FROM "turns";   -- one per table
    COMMIT;  CHECKPOINT arena_snapshot_<hex>;  DETACH arena_snapshot_<hex>;

All tables are read in one transaction, so they agree with each other as of one moment (DuckDB's
MVCC: the writer goes on meanwhile and is never blocked). The copy streams (bounded memory, a
few hundred MB/s) and the holder does nothing else with it: the reader's heavy work (joins,
sorts, COPY, prompt rendering) runs in the reader's own process, under its own memory limit,
and cannot slow the tournament beyond the copy itself or take it down.

Simplified on purpose: tables only (no views, keys or constraints); a snapshot is a private
scratch file that its reader deletes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb

from storage.errors import StoreError, first_line


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of the main schema of `con`'s database, sorted."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' ORDER BY table_name"
    ).fetchall()
    return [str(row[0]) for row in rows]


def check_snapshot_target(path: Path) -> None:
    """StoreError unless `path` is absolute, does not exist, and its folder does."""
    if not path.is_absolute():
        raise StoreError(f"a snapshot path must be absolute, not {path}")
    if path.exists() or path.is_symlink():
        raise StoreError(f"will not write a snapshot over {path}, which exists")
    if not path.parent.is_dir():
        raise StoreError(f"no folder {path.parent} to write a snapshot in")


def write_snapshot(
    con: duckdb.DuckDBPyConnection, path: Path, tables: Sequence[str] | None = None
) -> dict[str, int]:
    """Copy `tables` (all tables when None) of `con`'s database to a new DuckDB file at `path`.

    `con` must be a cursor of its own (it runs a transaction). Returns the rows copied per table.
    On any failure the partial file is removed and StoreError raised.
    """
    check_snapshot_target(path)
    known = table_names(con)
    wanted = known if tables is None else list(dict.fromkeys(tables))
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise StoreError(f"no table {', '.join(map(repr, unknown))} to copy")
    alias = f"arena_snapshot_{uuid.uuid4().hex[:16]}"
    location = str(path).replace("'", "''")
    try:
        con.execute(f"ATTACH '{location}' AS {alias}")
    except duckdb.Error as exc:
        _remove(path)
        raise StoreError(f"cannot create the snapshot {path}: {first_line(str(exc))}") from None
    counts: dict[str, int] = {}
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            for table in wanted:
                con.execute(
                    f"CREATE TABLE {alias}.{_quote(table)} AS SELECT * FROM {_quote(table)}"
                )
                row = con.execute(f"SELECT count(*) FROM {alias}.{_quote(table)}").fetchone()
                counts[table] = int(row[0]) if row else 0
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        con.execute(f"CHECKPOINT {alias}")  # the reader opens it read-only: no WAL to replay
    except duckdb.Error as exc:
        _detach(con, alias)
        _remove(path)
        raise StoreError(f"the snapshot failed: {first_line(str(exc))}") from None
    except BaseException:
        _detach(con, alias)
        _remove(path)
        raise
    _detach(con, alias)
    return counts


def _detach(con: duckdb.DuckDBPyConnection, alias: str) -> None:
    with contextlib.suppress(duckdb.Error):
        con.execute(f"DETACH DATABASE IF EXISTS {alias}")


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(OSError):
            leftover.unlink(missing_ok=True)
