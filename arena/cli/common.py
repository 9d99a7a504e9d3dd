"""What the commands share: the `--db` option, and how a user's mistake is reported.

A mistake (`UserError`, or a `StoreError` such as a database another process holds) is printed as
one line, `error: ...`, on stderr, with exit code 2 and no traceback; a failed write to a store
(`WriteError`: disk full, out of memory) the same way with exit code 4. The line is redacted
(`arena.core.redact`: a key a message happens to quote is not printed) and its whitespace folded, so
that it stays one line whatever the message holds.

`interruptible` lets SIGINT, SIGTERM, SIGHUP and SIGQUIT stop a command the way Ctrl-C does:
its cleanup runs (temporary outputs and scratch removed), one line says so, exit code 130.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

import typer

from arena.core.errors import UserError

EXIT_WRITE = 4
"""The exit code when the store could not write (disk full, out of memory), as for tournaments."""
EXIT_INTERRUPTED = 130
"""The exit code of a command stopped by SIGINT (Ctrl-C), SIGTERM, SIGHUP or SIGQUIT."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""The signals that stop a command as Ctrl-C does (SIGKILL cannot be caught: what a killed
command leaves is removed by the next one, `arena.core.files.remove_stale_scratch`)."""

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


@contextmanager
def interruptible(message: Callable[[str], str]) -> Iterator[None]:
    """Let a stop signal end the block as Ctrl-C does, then print `message(signal name)` as one
    line on stderr and exit with `EXIT_INTERRUPTED`.

    The first of `STOP_SIGNALS` raises KeyboardInterrupt in the block, so its `finally` clauses
    and context managers clean up; later ones are only noted, so that they cannot cut the
    cleanup short. DuckDB stops a running query only for SIGINT (it raises `RuntimeError: Query
    interrupted`, or an error of ours made from it): Python runs signal handlers only between
    bytecodes, so a watcher thread, woken through the signal wakeup file descriptor, turns
    SIGTERM, SIGHUP and SIGQUIT into a SIGINT for the main thread at once. Any exception that
    ends the block after a stop signal counts as the interruption. Outside the main thread the
    handlers cannot be set and the block runs as it is.
    """
    received: list[str] = []
    raised = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        if not raised.is_set():
            raised.set()
            raise KeyboardInterrupt

    def stop() -> NoReturn:
        typer.echo(message(received[0] if received else "SIGINT"), err=True)
        raise typer.Exit(EXIT_INTERRUPTED)

    with contextlib.ExitStack() as restore:
        try:
            previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
        except ValueError:  # not the main thread: signals stay as they are
            previous = {}
        for sig, handler in previous.items():
            restore.callback(signal.signal, sig, handler)
        if previous:
            restore.enter_context(_forward_to_sigint(received))
        try:
            yield
        except KeyboardInterrupt:
            stop()
        except Exception:
            if received:
                stop()
            raise


@contextmanager
def _forward_to_sigint(received: list[str]) -> Iterator[None]:
    """While the block runs, a thread that notes each stop signal other than SIGINT as soon as
    it arrives (before Python runs its handler) and interrupts the main thread with SIGINT,
    which DuckDB checks for while a query runs."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:
        os.close(read_end)
        os.close(write_end)
        yield
        return
    forwarded = {int(s) for s in STOP_SIGNALS} - {int(signal.SIGINT)}

    def watch() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data:
                return
            for number in data:
                if number in forwarded:
                    received.append(signal.Signals(number).name)
                    _thread.interrupt_main(signal.SIGINT)

    watcher = threading.Thread(target=watch, name="arena-signal-forward", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_end)
        watcher.join(timeout=5)
        os.close(read_end)


def write_output(out: Path, text: str, *, force: bool) -> None:
    """Write `text` to `out` whole or not at all; a full disk is one line and the write code."""
    import errno

    from arena.core.files import atomic_output

    with reported():
        try:
            with atomic_output(out, force=force) as tmp:
                tmp.write_text(text, encoding="utf-8")
        except OSError as error:
            code = EXIT_WRITE if error.errno == errno.ENOSPC else 2
            fail(f"{out}: could not write the report: {error.strerror or error}", code=code)


def check_report_out(out: Path | None, *, table: bool, force: bool, db: Path) -> None:
    """Refuse, before any work, an `--out` a report cannot be written to: with the terminal
    table (choose a file format), in a missing folder, over a file without `--force`, or over
    the database itself."""
    if out is None:
        return
    if table:
        fail("--out: choose --format json, markdown or html to write a file")
    if not out.parent.is_dir():
        fail(f"--out: no directory {out.parent}")
    from arena.core.files import check_output

    with reported():
        check_output(out, force=force, protected=[db])


def emit(text: str, out: Path | None, *, force: bool) -> None:
    """Print `text`, or write it to `out` whole (`write_output`) and say so."""
    if out is None:
        typer.echo(text)
        return
    write_output(out, text if text.endswith("\n") else text + "\n", force=force)
    typer.echo(f"wrote {out}")
