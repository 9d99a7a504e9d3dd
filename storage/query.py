"""Read-only SQL: what is allowed, how it runs, and results as JSON-safe values.

Used on both paths of `run_query`: a read-only connection to the file, and the live server inside
a running tournament. Read-only is enforced twice:

1. DuckDB's own parser (`extract_statements`) must classify every statement as SELECT (which
   includes SHOW, DESCRIBE, SUMMARIZE, FROM-first and VALUES) or EXPLAIN.
2. The statements run in a `BEGIN TRANSACTION READ ONLY`, so whatever slips past the parser
   (`EXPLAIN ANALYZE INSERT ...` is an EXPLAIN that inserts) is refused by DuckDB itself.

Query parameters (`?` placeholders, bound by DuckDB, never pasted into the SQL) must be JSON
values (None, bool, int, float, str, or lists of them), so that they cross the live socket
unchanged; a query with parameters must be one statement.

Values are converted so that both paths return the same thing and it survives `json.dumps`:
datetimes, dates and times become ISO strings, Decimal becomes float, UUID becomes str, bytes
become hex, tuples (ARRAY) become lists, map keys become strings, intervals become `str(timedelta)`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from storage.errors import ReadOnlyQueryError, StoreError, first_line

ALLOWED_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})

Params = Sequence[object] | None
"""Positional query parameters, one per `?`; JSON values only (see `check_params`)."""


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of the last statement of a query; values are JSON-safe."""

    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


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


def check_read_only(
    con: duckdb.DuckDBPyConnection, sql: str, params: Params = None
) -> list[duckdb.Statement]:
    """The query's statements, if all are SELECT or EXPLAIN; otherwise ReadOnlyQueryError.

    With parameters, the query must be a single statement (StoreError otherwise).
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise StoreError(first_line(str(exc))) from None
    if not statements:
        raise StoreError("the query is empty")
    refused = sorted({s.type.name for s in statements if s.type not in ALLOWED_STATEMENTS})
    if refused:
        raise ReadOnlyQueryError(
            f"only read-only queries (SELECT, EXPLAIN) are allowed here, not {', '.join(refused)}"
        )
    if params is not None and len(statements) > 1:
        raise StoreError(
            f"a query with parameters must be one statement, and this one has {len(statements)}"
        )
    return statements


def execute_read_query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Params = None
) -> QueryResult:
    """Check and run `sql` (with `params` bound to its `?`) in a read-only transaction on `con`
    (a cursor of its own).

    Several statements may be given (without parameters); they share one snapshot, and the result
    is the last one's.
    """
    values = check_params(params)
    statements = check_read_only(con, sql, values)
    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        con.execute(sql, values)
        description = con.description
        if not description:
            return QueryResult([], [])
        columns = [d[0] for d in description]
        if any("WITH TIME ZONE" in str(d[1]) for d in description):
            # Python values for TIMESTAMPTZ need pytz, which is not a dependency: let DuckDB
            # render those columns as text instead (the last statement is always a SELECT here;
            # the wrapper adds no placeholder, so the parameters bind as before).
            con.execute(_render_timezones(statements[-1].query, description), values)
        rows = [tuple(json_safe(v) for v in row) for row in con.fetchall()]
        return QueryResult(columns, rows)
    except duckdb.Error as exc:
        message = first_line(str(exc))
        if "read-only" in message:
            raise ReadOnlyQueryError(
                f"only read-only queries are allowed here; DuckDB refused a write: {message}"
            ) from None
        raise StoreError(message) from None
    finally:
        with contextlib.suppress(duckdb.Error):  # a failure may have ended it already
            con.execute("ROLLBACK")


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
