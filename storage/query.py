"""The sealed read path: which SQL may run, on what settings, within what limits; results as
JSON-safe values.

Used on every path of `run_query`: a read-only connection to the file, a store open in this
process, and the live server inside a running tournament (storage/live.py). A user's SQL meets
these guards in turn, each meant to hold even if the one before it missed something:

1. **Statement kinds** (`check_read_only`), by DuckDB's own parser (`extract_statements`): every
   statement must be a query (SELECT, which DuckDB also reports for WITH, FROM-first, VALUES,
   SHOW, DESCRIBE and SUMMARIZE). DuckDB 2.0 reports `EXPLAIN ANALYZE COPY ...` as just EXPLAIN
   and runs what it explains, so the text after `EXPLAIN [ANALYZE | (options)]` is parsed again
   and must be a query too. Everything else (INSERT, CREATE, SET, PRAGMA, INSTALL, ATTACH, COPY,
   EXPORT, CHECKPOINT, CALL, PIVOT, ...) is refused before it runs: ReadOnlyQueryError.
2. **Sources** (`check_sources`), on DuckDB's parse tree (`json_serialize_sql`), before anything
   is bound: every table a query names must be a table or view of the database (or a CTE in
   scope), every table function one of `PURE_TABLE_FUNCTIONS` (range, unnest, the catalog
   functions, ...), and no function may change state (`nextval`, `write_log`, ...). So a query
   cannot read other files (`read_csv`, `FROM 'x.parquet'`, `glob`), run SQL from a string
   (`query(...)`), checkpoint or turn on logging. Reading files (`FILE_TABLE_FUNCTIONS`, file
   names as tables) is allowed only where the caller asks (`allow_files`), and never by a live
   server. This is what keeps the live path sealed, since the tournament's own DuckDB instance
   must keep external access for its snapshots.
3. **Settings**: a connection `run_query` opens on a file is opened read-only with
   `sealed_config` (no external access unless files are allowed, no extension install or
   autoload, configuration locked), so a missed statement still cannot write or reach outside.
   The live server turns off extension autoinstall/autoload for the tournament's instance
   (storage/live.py); the rest of its settings are global and the writer needs them.
4. **A read-only transaction** (`BEGIN TRANSACTION READ ONLY`): DuckDB itself refuses any write
   to the database that got this far.
5. **Limits** (`ReadLimits`): a time limit (a watchdog thread calls `interrupt()` on the
   connection), and a cap on the rows and on the bytes of the result as JSON, checked while the
   result streams from DuckDB, so a huge result is never held in memory. The same watchdog
   cancels a query when `gone()` turns true (the live server's client disconnected) or when the
   process's resident memory has grown past `memory_budget` (the live server's bound on what a
   reader's sort or join may take of the tournament's memory).

Query parameters (`?` placeholders, bound by DuckDB, never pasted into the SQL) must be JSON
values (None, bool, int, float, str, or lists of them), so that they cross the live socket
unchanged; a query with parameters must be one statement.

Values are converted so that every path returns the same thing and it survives `json.dumps`:
datetimes, dates and times become ISO strings, Decimal becomes float, UUID becomes str, bytes
become hex, tuples (ARRAY) become lists, map keys become strings, intervals become `str(timedelta)`.

Simplified on purpose: the source check is an allowlist over DuckDB's parse tree, not a full
binder; a query it cannot read (a new kind of table reference) is refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from storage.errors import ReadOnlyQueryError, StoreError, first_line

READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT})
"""Statement kinds that may run (DuckDB reports SHOW, DESCRIBE, SUMMARIZE, VALUES as SELECT)."""
ALLOWED_STATEMENTS = READ_STATEMENTS | {duckdb.StatementType.EXPLAIN}
"""Kinds that pass the first look; an EXPLAIN must also explain a query."""

# fmt: off
PURE_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies",
    "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_memory", "duckdb_optimizers",
    "duckdb_schemas", "duckdb_sequences", "duckdb_settings", "duckdb_tables", "duckdb_types",
    "duckdb_views", "pragma_collations", "pragma_database_size", "pragma_metadata_info",
    "pragma_platform", "pragma_show", "pragma_storage_info", "pragma_table_info",
    "pragma_user_agent", "pragma_version", "icu_calendar_names", "pg_timezone_names",
    "test_all_types", "test_vector_types",
})
"""Table functions a query may call: generators and read-only views of the catalog."""

FILE_TABLE_FUNCTIONS = frozenset({
    "glob", "parquet_bloom_probe", "parquet_file_metadata", "parquet_full_metadata",
    "parquet_kv_metadata", "parquet_metadata", "parquet_page_index", "parquet_scan",
    "parquet_schema", "read_blob", "read_csv", "read_csv_auto", "read_duckdb", "read_json",
    "read_json_auto", "read_json_objects", "read_json_objects_auto", "read_ndjson",
    "read_ndjson_auto", "read_ndjson_objects", "read_parquet", "read_text", "sniff_csv",
})
"""Table functions that read files: allowed only with `allow_files`."""

STATEFUL_FUNCTIONS = frozenset({"nextval", "setval", "write_log"})
"""Scalar functions that change state; refused in every query."""

_TABLE_REFS = frozenset({
    "BASE_TABLE", "COLUMN_DATA", "EMPTY", "EXPRESSION_LIST", "JOIN", "PIVOT", "SHOW_REF",
    "SUBQUERY", "TABLE_FUNCTION",
})
# fmt: on
"""Kinds of table reference `check_sources` knows how to judge; any other is refused."""
_SEARCHED_SCHEMAS = frozenset({"main", "pg_catalog"})
_FILE_LIKE = re.compile(r"[./\\*?:~]")
_FETCH_ROWS = 2048
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

Params = Sequence[object] | None
"""Positional query parameters, one per `?`; JSON values only (see `check_params`)."""


class QueryLimitError(StoreError):
    """A query ran past its time limit, or its result past its row or size limit."""


class QueryCancelled(StoreError):
    """A query was cancelled because the one who asked went away (`gone`)."""


@dataclass(frozen=True)
class ReadLimits:
    """Limits on one query: time (seconds), rows, and bytes of the result as JSON; None: none.

    The defaults are what a running tournament allows a reader (`LIVE_LIMITS`).
    """

    timeout_s: float | None = 60.0
    max_rows: int | None = 100_000
    max_bytes: int | None = 64 * 2**20

    def tighter(self, other: ReadLimits | None) -> ReadLimits:
        """The stricter of `self` and `other` in each limit (a server's ceiling, a client's ask)."""
        if other is None:
            return self

        def least(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else min(a, b)

        rows, size = least(self.max_rows, other.max_rows), least(self.max_bytes, other.max_bytes)
        return ReadLimits(
            least(self.timeout_s, other.timeout_s),
            None if rows is None else int(rows),
            None if size is None else int(size),
        )

    def to_json(self) -> dict[str, float | int | None]:
        """The limits as a JSON object (they cross the live socket)."""
        return {"timeout_s": self.timeout_s, "max_rows": self.max_rows, "max_bytes": self.max_bytes}

    @classmethod
    def from_json(cls, data: object) -> ReadLimits:
        """Limits from `to_json`'s object; TypeError for anything else."""
        if not isinstance(data, Mapping) or set(data) - {"timeout_s", "max_rows", "max_bytes"}:
            raise TypeError("'limits' must be an object with timeout_s, max_rows, max_bytes")

        def positive(name: str) -> float | None:
            value = data.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise TypeError(f"limits: {name} must be a positive number or null")
            return float(value)

        timeout, rows, size = positive("timeout_s"), positive("max_rows"), positive("max_bytes")
        return cls(
            timeout, None if rows is None else int(rows), None if size is None else int(size)
        )


LIVE_LIMITS = ReadLimits()
"""What a running tournament allows one query: 60 s, 100,000 rows, 64 MiB of JSON."""
NO_LIMITS = ReadLimits(None, None, None)


DuckDBConfig = dict[str, str | bool | int | float | list[str]]
"""Settings for `duckdb.connect(config=...)`."""


def sealed_config(allow_files: bool = False) -> DuckDBConfig:
    """DuckDB settings for a connection that only reads its database (`duckdb.connect(config=)`).

    No extension is installed or loaded on demand, none from the community or a new repository,
    no Python variable is read as a table, and the configuration is locked so no statement can
    loosen it. Without `allow_files`, external access is off too: no file but the database may
    be read or written (COPY, ATTACH, read_csv, INSTALL all fail inside DuckDB).
    """
    return {
        "enable_external_access": allow_files,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_extension_repositories": "forbidden",
        "python_enable_replacements": False,
        "lock_configuration": True,
    }


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of the last statement of a query; values are JSON-safe."""

    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class ReadStatement:
    """One statement of a query that passed `check_read_only`."""

    query: str
    """Its text, as DuckDB split it."""
    reads: tuple[str, ...]
    """The queries it runs, for `check_sources`: itself, or what an EXPLAIN explains."""


def check_params(params: object) -> list[object] | None:
    """`params` as a list, if it is a sequence of JSON values; otherwise TypeError.

    JSON values cross the live socket unchanged, so a query reads the same on both paths.

    >>> check_params(("a", 1, [2.5, None]))
    ['a', 1, [2.5, None]]
    """
    if params is None:
        return None
    if isinstance(params, str | bytes) or not isinstance(params, Sequence):
        raise TypeError(f"query parameters must be a list of values, not {type(params).__name__}")
    values = list(params)
    for value in values:
        if not _is_json_value(value):
            raise TypeError(
                "query parameters must be None, bool, int, float, str or lists of them,"
                f" not {type(value).__name__}"
            )
    return values


def _is_json_value(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, list | tuple) and all(_is_json_value(v) for v in value)


def _refused(kinds: Sequence[str]) -> ReadOnlyQueryError:
    return ReadOnlyQueryError(
        "only read-only queries (SELECT, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE, and EXPLAIN"
        f" of those) are allowed here, not {', '.join(sorted(set(kinds)))}"
    )


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[duckdb.Statement]:
    try:
        return con.extract_statements(sql)
    except duckdb.Error as exc:
        raise StoreError(first_line(str(exc))) from None


def check_read_only(
    con: duckdb.DuckDBPyConnection, sql: str, params: Params = None
) -> list[ReadStatement]:
    """The query's statements, if every one is a query or EXPLAIN of one; else ReadOnlyQueryError.

    With parameters, the query must be a single statement (StoreError otherwise); a query DuckDB
    cannot parse is a StoreError with its message.
    """
    statements = _parse(con, sql)
    if not statements:
        raise StoreError("the query is empty")
    kinds = [_kind(s) for s in statements]
    refused = [
        k.name if k else "an unknown statement" for k in kinds if k not in ALLOWED_STATEMENTS
    ]
    if refused:
        raise _refused(refused)
    checked: list[ReadStatement] = []
    for statement, kind in zip(statements, kinds, strict=True):
        if kind == duckdb.StatementType.EXPLAIN:
            checked.append(ReadStatement(statement.query, _explained(con, statement.query)))
        else:
            checked.append(ReadStatement(statement.query, (statement.query,)))
    if params is not None and len(checked) > 1:
        raise StoreError(
            f"a query with parameters must be one statement, and this one has {len(checked)}"
        )
    return checked


def _explained(con: duckdb.DuckDBPyConnection, sql: str, depth: int = 0) -> tuple[str, ...]:
    """The query an EXPLAIN statement explains; ReadOnlyQueryError unless it is one.

    DuckDB 2.0 reports every EXPLAIN as EXPLAIN, whatever it wraps, and EXPLAIN ANALYZE runs it.
    The grammar is `EXPLAIN [ANALYZE | ANALYSE] [(options)] statement`, where the statement may
    itself begin with `(`; so every place the statement could begin is parsed again, and all of
    the readings DuckDB accepts must be queries (at least one must exist).
    """
    tokens = [(position, kind) for position, kind in duckdb.tokenize(sql) if kind.name != "comment"]
    words = [_word(sql, position) for position, _ in tokens]
    if not tokens or words[0] != "explain" or depth > 3:
        raise _refused(["EXPLAIN"])
    starts: list[int] = []
    i = 1
    while i < len(tokens):
        if words[i] in ("analyze", "analyse"):
            i += 1
            continue
        starts.append(tokens[i][0])
        if sql[tokens[i][0]] != "(":
            break
        depth_now, j = 0, i  # skip the parenthesised group: options, or the statement itself
        while j < len(tokens):
            char = sql[tokens[j][0]]
            depth_now += (char == "(") - (char == ")")
            j += 1
            if depth_now == 0:
                break
        i = j
    readings: list[str] = []
    refused: list[str] = []
    for start in starts:
        try:
            inner = con.extract_statements(sql[start:])
        except duckdb.Error:
            continue  # not where the statement begins
        if len(inner) != 1:
            refused.append("EXPLAIN of several statements")
            continue
        [statement] = inner
        kind = _kind(statement)
        if kind == duckdb.StatementType.EXPLAIN:
            readings.extend(_explained(con, statement.query, depth + 1))
        elif kind in READ_STATEMENTS:
            readings.append(statement.query)
        else:
            refused.append(f"EXPLAIN {kind.name if kind else 'of an unknown statement'}")
    if refused or not readings:
        raise _refused(refused or ["an EXPLAIN of something that is not a query"])
    return tuple(readings)


def _kind(statement: duckdb.Statement) -> duckdb.StatementType | None:
    """The statement's kind; None for one DuckDB's Python API cannot name (2.0.1 has no member
    for UPDATE EXTENSIONS, and raises ValueError), which is refused like any other."""
    try:
        return statement.type
    except ValueError:
        return None


def _word(sql: str, position: int) -> str:
    match = re.match(r"[A-Za-z_]+", sql[position:])
    return match.group(0).lower() if match else sql[position : position + 1]


def check_sources(
    con: duckdb.DuckDBPyConnection,
    statements: Sequence[ReadStatement],
    *,
    allow_files: bool = False,
) -> None:
    """Refuse a query that reads anything but the database, or calls a function with effects.

    Works on DuckDB's parse tree, so nothing is bound or read first. ReadOnlyQueryError for a
    refused source or function; StoreError (DuckDB's own words) for a table that does not exist.
    """
    catalog: _Catalog | None = None
    for statement in statements:
        for query in statement.reads:
            tree = _parse_tree(con, query)
            if catalog is None:
                catalog = _Catalog.of(con)
            _check_node(tree, frozenset(), catalog, allow_files)


def _parse_tree(con: duckdb.DuckDBPyConnection, query: str) -> Any:
    row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    tree = json.loads(row[0]) if row else {}
    if not isinstance(tree, dict) or tree.get("error"):
        message = tree.get("error_message", "no parse tree") if isinstance(tree, dict) else ""
        raise ReadOnlyQueryError(f"cannot check this query, so it is refused: {message}")
    return tree.get("statements", [])


@dataclass(frozen=True)
class _Catalog:
    """The tables and views a query may name, lower-cased (DuckDB's names are case-blind)."""

    current: str
    entries: frozenset[tuple[str, str, str]]

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection) -> _Catalog:
        rows = con.execute(
            "SELECT database_name, schema_name, table_name FROM duckdb_tables()"
            " UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views()"
        ).fetchall()
        current = con.execute("SELECT current_database()").fetchall()[0][0]
        return cls(
            str(current).lower(),
            frozenset((str(d).lower(), str(s).lower(), str(n).lower()) for d, s, n in rows),
        )

    def has(self, path: Sequence[str]) -> bool:
        """Whether `path` ([name], [schema or database, name], [database, schema, name]) names
        one of the entries the way DuckDB would find it without a replacement scan."""
        parts = [p.lower() for p in path]
        searched = {self.current, "temp", "system"}
        if len(parts) == 1:
            return any(
                d in searched and s in _SEARCHED_SCHEMAS and n == parts[0]
                for d, s, n in self.entries
            )
        if len(parts) == 2:
            first, name = parts
            return any(
                n == name and ((d == first and s == "main") or (s == first and d in searched))
                for d, s, n in self.entries
            )
        return len(parts) == 3 and tuple(parts) in self.entries


def _check_node(node: Any, ctes: frozenset[str], catalog: _Catalog, allow_files: bool) -> None:
    """Walk the parse tree; `ctes`: the CTE names in scope here."""
    if isinstance(node, list):
        for item in node:
            _check_node(item, ctes, catalog, allow_files)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict) and cte_map.get("map"):
        visible = set(ctes)
        for entry in cte_map["map"]:
            visible.add(str(entry.get("key", "")).lower())  # itself (recursive) and earlier ones
            _check_node(entry.get("value"), frozenset(visible), catalog, allow_files)
        ctes = frozenset(visible)
        node = {k: v for k, v in node.items() if k != "cte_map"}
    kind = node.get("type")
    if "class" in node:  # an expression
        if node.get("class") == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name in STATEFUL_FUNCTIONS:
                raise ReadOnlyQueryError(f"the function {name} changes state; it is refused here")
    elif "alias" in node and isinstance(kind, str):  # a table reference
        _check_table_ref(node, kind, ctes, catalog, allow_files)
    for value in node.values():
        if isinstance(value, dict | list):
            _check_node(value, ctes, catalog, allow_files)


def _check_table_ref(
    node: dict[str, Any], kind: str, ctes: frozenset[str], catalog: _Catalog, allow_files: bool
) -> None:
    if kind not in _TABLE_REFS:
        raise ReadOnlyQueryError(f"cannot check a table reference of kind {kind}, so it is refused")
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name in PURE_TABLE_FUNCTIONS:
            return
        if name in FILE_TABLE_FUNCTIONS:
            if not allow_files:
                raise _files_off(f"{name}(...)")
            return
        raise ReadOnlyQueryError(
            f"the table function {name} is not available here; a query reads the database's"
            " tables and views, range, unnest and the duckdb_* catalog functions"
        )
    if kind == "SHOW_REF" and node.get("show_type") != "SHOW":
        return  # SHOW TABLES and the like, or DESCRIBE/SUMMARIZE of a query checked below
    if kind in ("BASE_TABLE", "SHOW_REF"):
        path = [str(p) for p in (node.get("qualified_name") or {}).get("path", [])]
        if not path:
            path = [str(node.get("table_name", ""))]
        if len(path) == 1 and path[0].lower() in ctes:
            return
        if catalog.has(path) or allow_files:
            return  # with files allowed, DuckDB may read a file named like a table
        name = ".".join(path)
        if _FILE_LIKE.search(path[-1]):
            raise _files_off(repr(path[-1]))
        raise StoreError(f"Catalog Error: Table with name {name} does not exist!")


def _files_off(what: str) -> ReadOnlyQueryError:
    return ReadOnlyQueryError(
        f"reading files ({what}) is off for this query; only a read of a database file that no"
        " tournament is writing may allow it (allow_files, arena sql --allow-files)"
    )


RowSink = Callable[[list[list[Any]], list[bytes]], None]
"""Receives each chunk of a result: its rows as JSON-safe lists, and each row as JSON bytes."""


def execute_read_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Params = None,
    *,
    limits: ReadLimits | None = None,
    allow_files: bool = False,
    gone: Callable[[], bool] | None = None,
    memory_budget: int | None = None,
) -> QueryResult:
    """Check and run `sql` (with `params` bound to its `?`) in a read-only transaction on `con`
    (a cursor of its own), within `limits` (None: none); the last statement's result.

    Several statements may be given (without parameters); they share one snapshot, and the result
    is the last one's. Raises ReadOnlyQueryError for a refused query, QueryLimitError past a
    limit, QueryCancelled when `gone()` turns true, StoreError for DuckDB's other errors.
    `memory_budget` (bytes): cancel the query if this process's resident memory grows by more
    while it runs (the live server's bound on a reader's share of the tournament's memory).
    """
    rows: list[tuple[Any, ...]] = []
    columns = stream_read_query(
        con,
        sql,
        params,
        limits=limits,
        allow_files=allow_files,
        gone=gone,
        memory_budget=memory_budget,
        sink=lambda chunk, _encoded: rows.extend(tuple(r) for r in chunk),
    )
    return QueryResult(columns, rows)


def stream_read_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Params = None,
    *,
    sink: RowSink,
    limits: ReadLimits | None = None,
    allow_files: bool = False,
    gone: Callable[[], bool] | None = None,
    memory_budget: int | None = None,
) -> list[str]:
    """`execute_read_query`, handing the result to `sink` chunk by chunk as it streams from
    DuckDB (the live server keeps only the JSON bytes); returns the column names."""
    limits = limits or NO_LIMITS
    values = check_params(params)
    statements = check_read_only(con, sql, values)
    with _Watchdog(con, limits.timeout_s, gone, memory_budget) as watchdog:
        try:
            con.execute("BEGIN TRANSACTION READ ONLY")
            check_sources(con, statements, allow_files=allow_files)
            con.execute(sql, values)
            description = con.description
            if not description:
                return []
            columns = [str(d[0]) for d in description]
            if any("WITH TIME ZONE" in str(d[1]) for d in description):
                # Python values for TIMESTAMPTZ need pytz, which is not a dependency: let DuckDB
                # render those columns as text instead (the last statement is always a query
                # here; the wrapper adds no placeholder, so the parameters bind as before).
                con.execute(_render_timezones(statements[-1].query, description), values)
            _fetch(con, limits, sink, watchdog)
            return columns
        except duckdb.Error as exc:
            if watchdog.reason is not None:
                raise watchdog.error() from None
            message = first_line(str(exc))
            if "read-only" in message or "Permission Error" in message:
                raise ReadOnlyQueryError(
                    f"only read-only queries are allowed here; DuckDB refused: {message}"
                ) from None
            raise StoreError(message) from None
        finally:
            with contextlib.suppress(duckdb.Error):  # a failure may have ended it already
                con.execute("ROLLBACK")


def _fetch(
    con: duckdb.DuckDBPyConnection, limits: ReadLimits, sink: RowSink, watchdog: _Watchdog
) -> None:
    """Stream the result into `sink`, stopping at the first row or byte past the limits."""
    rows = size = 0
    while True:
        chunk = con.fetchmany(_FETCH_ROWS)
        if watchdog.reason is not None:
            raise watchdog.error()
        if not chunk:
            return
        safe = [[json_safe(v) for v in row] for row in chunk]
        encoded = [json.dumps(row, ensure_ascii=False).encode() for row in safe]
        rows += len(safe)
        size += sum(len(e) + 1 for e in encoded)
        if limits.max_rows is not None and rows > limits.max_rows:
            raise QueryLimitError(
                f"the result has more than {limits.max_rows:,} rows, the limit for this query;"
                " aggregate or add a LIMIT (bulk reads: storage.read_connection, arena pairs)"
            )
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise QueryLimitError(
                f"the result is over {_size(limits.max_bytes)} as JSON, the limit for this"
                " query; select fewer or shorter columns, or add a LIMIT"
            )
        sink(safe, encoded)


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


class _Watchdog:
    """Interrupts `con`'s query when its time is up, when `gone()` turns true, or when this
    process's resident memory has grown by more than `memory_budget` bytes since the start
    (checked every 0.05 s).

    `reason` says which, once it has fired ("timeout", "gone" or "memory").
    """

    POLL_S = 0.05

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        timeout_s: float | None,
        gone: Callable[[], bool] | None,
        memory_budget: int | None = None,
    ) -> None:
        self._con = con
        self._timeout_s = timeout_s
        self._gone = gone
        self._budget = memory_budget if resident_bytes() is not None else None
        self._done = threading.Event()
        self.reason: str | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Watchdog:
        if self._timeout_s is not None or self._gone is not None or self._budget is not None:
            deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
            ceiling = None if self._budget is None else (resident_bytes() or 0) + self._budget
            self._thread = threading.Thread(
                target=self._watch,
                args=(deadline, ceiling),
                name="storage-query-watchdog",
                daemon=True,
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, deadline: float | None, ceiling: int | None) -> None:
        while not self._done.wait(self.POLL_S):
            if self.reason is not None:
                pass
            elif deadline is not None and time.monotonic() >= deadline:
                self.reason = "timeout"
            elif self._gone is not None and self._gone():
                self.reason = "gone"
            elif ceiling is not None and (resident_bytes() or 0) > ceiling:
                self.reason = "memory"
            else:
                continue
            # Again at every poll until the query ends: an interrupt that lands between two of
            # the statements a read runs (its checks, then the query) is lost, and the query
            # after it would run on.
            self._con.interrupt()

    def error(self) -> StoreError:
        """The error to raise for why the query was interrupted."""
        if self.reason == "gone":
            return QueryCancelled("the query was cancelled")
        if self.reason == "memory":
            return QueryLimitError(
                f"the query needed more than {_size(self._budget or 0)} of the running"
                " tournament's memory and was cancelled; aggregate in smaller steps, or read in"
                " bulk (storage.read_connection, arena pairs)"
            )
        return QueryLimitError(
            f"the query ran past its time limit of {self._timeout_s:g} s and was cancelled"
        )


def resident_bytes() -> int | None:
    """This process's resident memory (Linux: /proc/self/statm), or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _render_timezones(query: str, description: Sequence[tuple[Any, ...]]) -> str:
    select = []
    for position, (name, data_type, *_) in enumerate(description, start=1):
        expression = f"#{position}"
        if "WITH TIME ZONE" in str(data_type):
            expression = f"CAST({expression} AS VARCHAR)"
        select.append(f'{expression} AS "{name.replace(chr(34), chr(34) * 2)}"')
    inner = query.strip().rstrip(";")
    return f"SELECT {', '.join(select)} FROM ({inner}\n) AS q"


def json_safe(value: object) -> Any:
    """A value that `json.dumps` accepts and that reads the same after a round trip."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)
