"""The errors storage raises, each with a one-line message a user can act on.

Everything derives from `StoreError`, so a command line can catch that one class and print the
message without a traceback. DuckDB's own exceptions are chained as `__cause__` where they are
the reason.
"""

from __future__ import annotations


class StoreError(Exception):
    """A storage operation failed; the message says why in one line."""


class StoreBusyError(StoreError):
    """The database file is held by another process (or already open in this one)."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid
        """The process holding the file, when known."""


class ReadOnlyQueryError(StoreError):
    """A read-only query (`run_query`) contained a statement that could change something."""


class WriteError(StoreError):
    """Rows given to the background writer could not be committed.

    Raised from the writer's next `insert`/`flush`/`close` call after the failed commit.
    """


def first_line(message: str) -> str:
    """DuckDB's message as one line: the paragraph before the `LINE 1: ...` excerpt, joined.

    >>> first_line('Catalog Error: Table x does not exist!\\nDid you mean "y"?\\n\\nLINE 1: ...')
    'Catalog Error: Table x does not exist! Did you mean "y"?'
    """
    paragraph = message.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
