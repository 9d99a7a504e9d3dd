"""What the commands share: the `--db` option, and how a user's mistake is reported.

A mistake (`UserError`, or a `StoreError` such as a database another process holds) is printed as
one line, `error: ...`, on stderr, with exit code 2 and no traceback; a failed write to a store
(`WriteError`: disk full, out of memory) the same way with exit code 4. The line is redacted
(`arena.core.redact`: a key a message happens to quote is not printed) and its whitespace folded, so
that it stays one line whatever the message holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer

from arena.core.errors import UserError

EXIT_WRITE = 4
"""The exit code when the store could not write (disk full, out of memory), as for tournaments."""

DB_OPTION = typer.Option(Path("arena.duckdb"), "--db", help="The DuckDB file.")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: <message>` on stderr, redacted and on one line, and exit with `code`."""
    from arena.core.redact import redact

    typer.echo(f"error: {' '.join(redact(message).split())}", err=True)
    raise typer.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Turn a user's mistake raised inside the block into `fail`."""
    from storage import StoreError, WriteError

    try:
        yield
    except WriteError as error:  # the disk or memory, not the user: a code of its own
        fail(str(error), code=EXIT_WRITE)
    except (UserError, StoreError) as error:
        fail(str(error))
