"""Numbered schema migrations, applied when a store is opened, and what the schema looks like.

Migrations are the files `storage/migrations/NNNN_name.sql`, read with `importlib.resources` so
they work from an installed wheel. Each one runs in its own transaction together with its row in
`schema_migrations (version, name, applied_at)`, so a crash mid-migration leaves the database at
the previous version. A database whose recorded version is newer than the newest file here was
written by a newer debate-arena; opening it is refused rather than guessed at.

A reader cannot migrate a file it opens read-only. When no one else holds a file that is behind
(`pending_migrations`), the reader takes the write lock for a moment and migrates it
(storage/sql.py); while a tournament holds it, the tournament has migrated it on open. Only where
that is impossible (a read-only filesystem, another reader that keeps the file open) is the file
read as it is; `pending_views` then gives the statements that create the views added since as
temporary views of the reader's connection (views only: a pending change to a table cannot be
shown that way).

`read_tables` reads the tables, columns and primary keys back from DuckDB's catalog; the writer
uses it to validate rows and to build `ON CONFLICT (pk)` clauses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import duckdb

from storage.errors import StoreError

MIGRATIONS_PACKAGE = "storage"
MIGRATIONS_DIR = "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        VARCHAR NOT NULL,
    applied_at  TIMESTAMP NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class TableInfo:
    """A table as the catalog describes it."""

    name: str
    columns: dict[str, str]
    """Column name -> DuckDB type name, in table order."""
    primary_key: tuple[str, ...]
    """Primary-key columns; empty when the table has none."""


def load_migrations() -> list[Migration]:
    """The migration files shipped in the package, sorted by version."""
    found: dict[int, Migration] = {}
    folder = resources.files(MIGRATIONS_PACKAGE) / MIGRATIONS_DIR
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise StoreError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise StoreError(f"two migration files have version {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """Versions recorded in `schema_migrations` (creating the table if it is missing)."""
    con.execute(_CREATE_MIGRATIONS_TABLE)
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


_CREATE_VIEW = re.compile(r"^CREATE\s+(OR\s+REPLACE\s+)?VIEW\b", re.IGNORECASE)


def _without_leading_comments(sql: str) -> str:
    """`sql` from its first token on: leading whitespace, `--` lines and `/* */` blocks removed.

    DuckDB 2.0.1's `extract_statements` keeps the comments that precede a statement in its
    `.query`; 2.0.0 dropped them. Block comments nest in DuckDB, as in PostgreSQL.
    """
    rest = sql.lstrip()
    while True:
        if rest.startswith("--"):
            end = rest.find("\n")
            rest = "" if end < 0 else rest[end + 1 :].lstrip()
        elif rest.startswith("/*"):
            depth, i = 1, 2
            while depth and i < len(rest):
                if rest.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif rest.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            rest = rest[i:].lstrip()
        else:
            return rest


def pending_views(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] | None = None
) -> list[str]:
    """`CREATE TEMP VIEW` statements for the views of migrations not applied to `con`'s file.

    Reads only. Migrations that do anything but create views are skipped, and so is a database
    without `schema_migrations` (not one of ours).
    """
    statements: list[str] = []
    for migration in pending_migrations(con, migrations):
        parsed = [_without_leading_comments(s.query) for s in con.extract_statements(migration.sql)]
        if parsed and all(_CREATE_VIEW.match(q) for q in parsed):
            statements += [_CREATE_VIEW.sub(r"CREATE \1TEMP VIEW", q, count=1) for q in parsed]
    return statements


def pending_migrations(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """The migrations a reader should apply before reading `con`'s file; reads only.

    Empty for a database that is not one of ours (no `schema_migrations`), and for one written
    by a newer debate-arena (whose migrations this one does not know: it is read as it is).
    """
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not exists:
        return []
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    todo = load_migrations() if migrations is None else sorted(migrations, key=lambda m: m.version)
    if done and max(done) > max((m.version for m in todo), default=0):
        return []
    return [m for m in todo if m.version not in done]


def apply_migrations(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply the migrations not yet recorded, in version order; return those applied.

    `migrations` defaults to the shipped files (tests pass their own).
    """
    todo = load_migrations() if migrations is None else sorted(migrations, key=lambda m: m.version)
    done = applied_versions(con)
    newest_known = max((m.version for m in todo), default=0)
    if done and max(done) > newest_known:
        raise StoreError(
            f"this database has schema version {max(done)}, newer than this debate-arena "
            f"knows ({newest_known}); upgrade debate-arena to use it"
        )
    applied: list[Migration] = []
    for migration in todo:
        if migration.version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [migration.version, migration.name, datetime.now(UTC).replace(tzinfo=None)],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
        applied.append(migration)
    return applied


def read_tables(con: duckdb.DuckDBPyConnection) -> dict[str, TableInfo]:
    """Tables of the main schema with their columns and primary keys."""
    columns: dict[str, dict[str, str]] = {}
    for table, column, data_type in con.execute(
        """
        SELECT table_name, column_name, data_type FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name = 'main'
          AND table_oid IN (SELECT table_oid FROM duckdb_tables())  -- not views
        ORDER BY table_name, column_index
        """
    ).fetchall():
        columns.setdefault(table, {})[column] = data_type
    keys: dict[str, tuple[str, ...]] = {}
    for table, key_columns in con.execute(
        """
        SELECT table_name, constraint_column_names FROM duckdb_constraints()
        WHERE database_name = current_database() AND schema_name = 'main'
          AND constraint_type = 'PRIMARY KEY'
        """
    ).fetchall():
        keys[table] = tuple(key_columns)
    return {
        name: TableInfo(name, cols, keys.get(name, ())) for name, cols in sorted(columns.items())
    }
