"""`arena sql`: a read-only query, printed as a table, CSV or JSON (`arena.sqlcmd`)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, reported


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def sql(
    query: str = typer.Argument(..., help="A read-only SQL query (SELECT, DESCRIBE, ...)."),
    db: Path = DB_OPTION,
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
) -> None:
    """Query the database, read-only; works while a tournament is writing to it."""
    from arena.sqlcmd import render_result
    from storage import run_query

    with reported():
        result = run_query(db, query)
    render_result(result, fmt.value, sys.stdout)
