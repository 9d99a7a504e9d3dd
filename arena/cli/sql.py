"""`arena sql`: a read-only query, printed as a table, CSV or JSON (`arena.sqlcmd`).

The query goes through the sealed read path (`storage.run_query`, storage/query.py): only
queries, only on the database, within a time limit and a result size limit; reading other files
only with `--allow-files`, and never while a tournament serves the database. A refusal or a limit
is one line, `error: ...`, exit code 2; Ctrl-C cancels the query (in a running tournament too,
which notices that the client went away) and exits with 130.
"""

from __future__ import annotations

import os
import sys
import threading
from enum import StrEnum
from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, reported


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def sql(
    query: str = typer.Argument(
        ..., help="A read-only query (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)."
    ),
    db: Path = DB_OPTION,
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
    allow_files: bool = typer.Option(
        False,
        "--allow-files",
        help="Let the query read other files (read_csv, read_parquet, FROM 'x.csv', glob) when"
        " the database is read directly; never while a tournament is running on it.",
    ),
    timeout: float = typer.Option(
        60.0, "--timeout", min=0.001, help="Cancel the query after this many seconds."
    ),
    max_rows: int = typer.Option(
        100_000, "--max-rows", min=1, help="Refuse a result with more rows than this."
    ),
    max_mb: float = typer.Option(
        64.0, "--max-mb", min=0.001, help="Refuse a result larger than this many MiB as JSON."
    ),
) -> None:
    """Query the database, read-only; works while a tournament is writing to it.

    A running tournament answers at most 60 s, 100,000 rows and 64 MiB per query, whatever the
    flags ask; they can only lower those limits.
    """
    from arena.sqlcmd import render_result
    from storage import QueryResult, run_query
    from storage.query import ReadLimits

    limits = ReadLimits(timeout, max_rows, int(max_mb * 2**20))
    cancel = threading.Event()
    outcome: list[QueryResult | BaseException] = []

    def ask() -> None:
        try:
            outcome.append(
                run_query(
                    db, query, limits=limits, allow_files=allow_files, cancelled=cancel.is_set
                )
            )
        except BaseException as exc:
            outcome.append(exc)

    # The query runs in a thread so that Ctrl-C reaches this one at once (DuckDB holds the main
    # thread in C until the query ends) and can cancel it, on the file or in the tournament.
    worker = threading.Thread(target=ask, name="arena-sql", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        cancel.set()
        # Wait for the query to end (its watchdog interrupts it at once): a thread still inside
        # DuckDB while the interpreter exits can abort the process instead of exiting with 130.
        worker.join(30.0)
        typer.echo("error: interrupted: the query was cancelled", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # DuckDB can abort the interpreter's teardown after an interrupted query ("terminate
        # called ... FATAL: exception not rethrown", exit -6, about 1 run in 8). The query's
        # thread has ended and cleaned up its snapshot; nothing is left to do but exit, so leave
        # without the teardown.
        os._exit(130)
    [result] = outcome
    with reported():
        if isinstance(result, BaseException):
            raise result
    assert isinstance(result, QueryResult)
    render_result(result, fmt.value, sys.stdout)
