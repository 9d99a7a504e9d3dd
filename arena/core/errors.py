"""The errors a user can meet, and how the CLI reports them.

`UserError` and its subclasses are mistakes in the user's input (a config file, a flag, a busy
database): the CLI prints their message as one line and exits with code 2, without a traceback and
before any model is called or anything is written. `BackendError` is what a backend raises when a
call fails; it says whether trying again could help, and the engine alone decides what to do. Its
message is passed through `arena.core.redact.redact` when it is made, so a key a provider quoted
back never reaches `calls.error`, `debates.error` or the terminal, whichever backend raised it.
"""

from __future__ import annotations

from arena.core.redact import redact


class ArenaError(Exception):
    """Base class of every error this package raises on purpose."""


class UserError(ArenaError):
    """A mistake in what the user gave us; printed as one line, exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A config file (or flag) is invalid. The message names the file, the field and the problem."""

    def __init__(self, source: str, field: str | None, problem: str, line: int | None = None):
        self.source = source
        self.field = field
        self.problem = problem
        self.line = line
        where = source if line is None else f"{source}:{line}"
        text = f"{where}: {field}: {problem}" if field else f"{where}: {problem}"
        super().__init__(text)


class BackendError(ArenaError):
    """A model call failed.

    `kind` is one of: 'rate_limit', 'server', 'timeout', 'connection', 'malformed' (retryable by
    default) or 'bad_request', 'auth', 'context_length', 'not_found' (not retryable).
    `retry_after` is the delay the server asked for, in seconds, when it said so. The message is
    redacted (`arena.core.redact`): it is recorded and printed as it is.
    """

    RETRYABLE_KINDS = frozenset({"rate_limit", "server", "timeout", "connection", "malformed"})

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(redact(message))
        self.kind = kind
        self.retryable = kind in self.RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after = retry_after


class BudgetReached(ArenaError):
    """The run's spend reached its budget before a new debate's first call was sent."""


def as_backend_error(error: BaseException, what: str = "") -> BackendError:
    """Any exception from a model call as a `BackendError` (kept as it is if it already is one).

    A timeout is retryable; so is torch's out-of-memory error (a smaller batch may fit next time);
    anything else is a bug or an unknown failure and is not retried. `what` prefixes the message
    (for example "local model failed").
    """
    if isinstance(error, BackendError):
        return error
    if isinstance(error, TimeoutError):
        return BackendError("call timed out", kind="timeout")
    if type(error).__name__ == "OutOfMemoryError":
        return BackendError(f"out of memory: {error}", kind="server")
    prefix = f"{what}: " if what else ""
    return BackendError(f"{prefix}{type(error).__name__}: {error}", kind="unknown", retryable=False)
