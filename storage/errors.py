"""The errors storage raises, each with a one-line message a user can act on.

Everything derives from `StoreError`, so a command line can catch that one class and print the
message without a traceback. DuckDB's own exceptions are chained as `__cause__` where they are
the reason.
"""

from __future__ import annotations

import errno


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
    """Rows could not be committed to the database file, so the writer has stopped.

    The writer is the source of truth of a run: after its first failed commit it accepts nothing
    more, and every later `insert`, `flush` and `close` raises this error again (a fresh copy each
    time), so that no caller goes on producing rows that cannot be kept. The store's synchronous
    writes raise it too when the file cannot be written. `reason` names the cause in words a user
    can act on (`DISK_FULL`, `OUT_OF_MEMORY`, or `WRITE_FAILED` for anything else) and `path` the
    file, both also in the one-line message.
    """

    def __init__(self, message: str, *, reason: str = "", path: str = "") -> None:
        super().__init__(message)
        self.reason = reason or WRITE_FAILED
        """Why, in a few words: 'disk full', 'out of memory' or 'write failed'."""
        self.path = path
        """The database file that could not be written ('' when unknown)."""

    def again(self) -> WriteError:
        """A fresh copy to raise once more (raising one instance again and again would keep
        growing its traceback); the cause is kept."""
        copy = WriteError(str(self), reason=self.reason, path=self.path)
        copy.__cause__ = self.__cause__
        return copy


DISK_FULL = "disk full"
OUT_OF_MEMORY = "out of memory"
WRITE_FAILED = "write failed"

_DISK_FULL_SIGNS = ("no space left on device", "disk full", "disk quota exceeded", "errno 28")
_OUT_OF_MEMORY_SIGNS = ("out of memory", "could not allocate", "cannot allocate memory")


def failure_reason(error: BaseException) -> str:
    """The cause of a failed write, from the exception: `DISK_FULL`, `OUT_OF_MEMORY` or
    `WRITE_FAILED`. DuckDB reports both through messages (an IO, transaction or fatal error whose
    text carries the operating system's `No space left on device`, an `Out of Memory Error`), so
    the text decides; Python's own `MemoryError` and an `OSError` with ENOSPC are recognised too.

    >>> failure_reason(OSError(28, "No space left on device"))
    'disk full'
    >>> failure_reason(MemoryError())
    'out of memory'
    """
    if isinstance(error, MemoryError):
        return OUT_OF_MEMORY
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DISK_FULL
    text = str(error).lower()
    if any(sign in text for sign in _DISK_FULL_SIGNS):
        return DISK_FULL
    if (
        any(sign in text for sign in _OUT_OF_MEMORY_SIGNS)
        or "outofmemory" in type(error).__name__.lower()
    ):
        return OUT_OF_MEMORY
    return WRITE_FAILED


def write_error(error: BaseException, path: str, what: str = "") -> WriteError:
    """A `WriteError` for `error`, raised while writing `path`: one line naming the file and the
    cause, then DuckDB's (or Python's) own first line; `what` adds what was being written."""
    reason = failure_reason(error)
    detail = first_line(str(error)) or type(error).__name__
    doing = f" ({what})" if what else ""
    message = f"could not write to {path}{doing}: {reason}: {detail}"
    result = WriteError(message, reason=reason, path=path)
    result.__cause__ = error
    return result


def first_line(message: str) -> str:
    """DuckDB's message as one line: the paragraph before the `LINE 1: ...` excerpt, joined.

    >>> first_line('Catalog Error: Table x does not exist!\\nDid you mean "y"?\\n\\nLINE 1: ...')
    'Catalog Error: Table x does not exist! Did you mean "y"?'
    """
    paragraph = message.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
