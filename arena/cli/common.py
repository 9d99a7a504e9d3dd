"""What the commands share: the `--db` option, and how a user's mistake is reported.

A mistake (`UserError`, or a `StoreError` such as a database another process holds) is printed
as one line, `error: ...`, on stderr, with exit code 2 and no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer

from arena.core.errors import UserError

DB_OPTION = typer.Option(Path("arena.duckdb"), "--db", help="The DuckDB file.")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: <message>` on stderr and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Turn a user's mistake raised inside the block into `fail`."""
    from storage import StoreError

    try:
        yield
    except (UserError, StoreError) as error:
        fail(str(error))
