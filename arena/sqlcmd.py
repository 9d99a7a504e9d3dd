"""Printing query results for `arena sql`: a rich table, CSV or JSON (a list of objects)."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from storage import QueryResult


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def render_result(result: QueryResult, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        out.write(json.dumps(rows, ensure_ascii=False, default=str, indent=1) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_cell(v) for v in row] for row in result.rows])
    else:
        table = Table(*result.columns, show_lines=False)
        for row in result.rows:
            table.add_row(*[_cell(v) for v in row])
        console = Console(file=out, width=max(120, Console().width))
        console.print(table)
        console.print(f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}")
