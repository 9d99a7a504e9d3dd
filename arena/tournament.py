"""`arena tournament`: load the config, open the store, play the debates, report.

Exit codes: 0 every debate finished, 1 some debates failed or are not fully recorded (rerun to
retry them), 2 a user error (nothing was called or written), 3 the budget stopped new debates
(rerun with a higher --budget-usd), 4 the database could not be written (a full disk, memory
running out: one line names the cause and the file; no call was sent after the failure, every
debate is fully recorded or resumable, so the same command continues once the cause is fixed),
130 interrupted (rerun the printed command to continue).

Interrupted means Ctrl-C, or SIGTERM, SIGHUP or SIGQUIT, which all end a run the same way
(`StopSignals`): debates in flight are dropped, the run is marked `interrupted`, the command that
continues it is printed, the live socket and `<db>.live.json` are removed as the store closes.
A signal never cuts a write to the store in half: while the run is set up or wrapped up it is
noted and acted on at the next safe point. Only SIGKILL leaves the socket and live.json behind;
the next tournament to start removes them (storage/live.py).

The summary counts what the store holds, read back after the last rows were committed; the run is
marked `complete` only when the store confirms every debate of the plan (`Task.tally`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from rich.console import Console

from arena.config import InputLimits, TournamentConfig, load_tournament
from arena.core.clock import now
from arena.progress import show_progress
from arena.runner import Progress, Runner, RunSummary
from arena.runs import check_run, default_run_id, finish_run, record_run
from arena.schedule import RoundRobin
from arena.tasks.debate import DebateTask
from storage import Store, WriteError

EXIT_OK, EXIT_FAILED, EXIT_USER, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_WRITE = 4
"""The database could not be written (disk full, out of memory): not a mistake in the input."""


class Tournament:
    """A tournament: the debate task, played by the runner over a round robin."""

    def __init__(self, config: TournamentConfig, store: Store, run_id: str):
        settings = config.settings
        self.task = DebateTask(config, store, run_id)
        self.plan = RoundRobin(
            run_id, config.topics, [c.name for c in config.contestants], settings.replicates
        )
        self.runner = Runner(
            self.task,
            store,
            run_id,
            self.task.backends(),
            max_concurrency=settings.max_concurrency,
            request_timeout_s=settings.request_timeout_s,
            retry=settings.retry,
            budget_usd=settings.budget_usd,
        )

    @property
    def progress(self) -> Progress:
        return self.runner.progress

    async def run(self) -> RunSummary:
        return await self.runner.run(self.plan, len(self.plan))


def continue_command(argv: list[str] | None = None) -> str:
    """The command line that continues this run (the same one)."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["arena", *args])


def _summary_lines(summary: RunSummary) -> list[str]:
    """The summary: counts read back from the store (`done`, what it holds), then what this
    session did (all of it committed: the summary is made after the last flush)."""
    c = summary.calls
    rate = summary.steps / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    held = []
    if summary.stored_steps is not None:
        held.append(f"{summary.stored_steps} {summary.step}s")
    if summary.stored_verdicts is not None:
        held.append(f"{summary.stored_verdicts} verdicts")
    lines = [
        f"run {summary.run_id}: {summary.done}/{summary.total} {summary.unit}s done"
        + (f" ({summary.skipped} already recorded)" if summary.skipped else "")
        + (f", {summary.failed} failed" if summary.failed else "")
        + (f"; the database holds {' and '.join(held)} of them" if held else ""),
        f"  this session: {summary.steps} {summary.step}s ({rate:.1f}/s) and {summary.verdicts}"
        f" verdicts in {summary.elapsed_s:.1f} s; {c.calls} calls, {c.failed_attempts} failed"
        f" attempts retried or given up; {c.prompt_tokens + c.completion_tokens:,} tokens;"
        f" ${c.cost_usd:.4f}",
    ]
    for unit_id, error in summary.errors[:5]:
        lines.append(f"  failed {unit_id}: {error}")
    if len(summary.errors) > 5:
        lines.append(f"  ... and {len(summary.errors) - 5} more (see debates.error)")
    return lines


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""Signals that stop a tournament as Ctrl-C does (SIGKILL cannot be caught)."""


class StopSignals:
    """While a tournament runs, SIGINT, SIGTERM, SIGHUP and SIGQUIT all stop it as Ctrl-C does.

    Used as a context manager around everything that touches the store (the handlers are
    restored on exit). The first signal is noted (`received`, its name); while the debates are
    played (`cancelling`) it also cancels the main task, so the runner stops and `asyncio.run`
    raises CancelledError. At any other moment (opening the store, recording the run, marking it
    finished, closing the store) nothing is cut short: a signal during set-up stops the run as
    soon as play would begin, one during wrap-up changes nothing (the run is ending anyway).
    Outside the main thread the handlers cannot be set; the run is then stopped only by the
    signals' default actions.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        """The name of the first stop signal received, or None."""
        self._cancel: Callable[[], None] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        with contextlib.suppress(ValueError):  # not the main thread
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            return  # one stop is enough; a second must not cut the first one's cleanup short
        self.received = signal.Signals(signum).name
        if self._cancel is not None:
            self._cancel()

    @contextlib.contextmanager
    def cancelling(
        self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]
    ) -> Iterator[None]:
        """While the block runs, a stop signal cancels `task` (at once, if one came already).

        CPython runs a signal's handler in the main thread, between bytecodes; a main thread
        asleep in the event loop's select would not notice a signal delivered to another thread
        (the writer's, DuckDB's), so the signal wakeup descriptor wakes the loop meanwhile.
        """

        def cancel() -> None:
            loop.call_soon_threadsafe(task.cancel)

        self._cancel = cancel
        try:
            with _wakeup(loop):
                if self.received is not None:
                    cancel()
                yield
        finally:
            self._cancel = None


@contextlib.contextmanager
def _wakeup(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Wake `loop` whenever a signal arrives, in whichever thread (see `StopSignals`)."""
    reader, writer = socket.socketpair()
    with reader, writer:
        reader.setblocking(False)
        writer.setblocking(False)
        try:
            previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            yield
            return

        def drain() -> None:
            with contextlib.suppress(OSError):
                while reader.recv(4096):
                    pass

        loop.add_reader(reader.fileno(), drain)
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous)
            loop.remove_reader(reader.fileno())


async def _play(
    tournament: Tournament, console: Console, quiet: bool, signals: StopSignals
) -> RunSummary:
    main = asyncio.current_task()
    if main is None:  # asyncio.run always runs a task
        raise AssertionError("unreachable: _play runs outside a task")
    with signals.cancelling(asyncio.get_running_loop(), main):
        async with show_progress(tournament.progress, console, enabled=not quiet):
            return await tournament.run()


def _write_failure_lines(
    error: WriteError, store: Store, run_id: str, total: int | None, command: str
) -> list[str]:
    """What a write failure prints: the cause and the file on one line, then what the file holds
    (read from what was committed, when it can still be read) and how to continue."""
    lines = [f"error: {error}"]
    held = ""
    with contextlib.suppress(Exception):  # the file may be unreadable by now: then say less
        if total:
            # `done` is queued after every other row of a debate, and the writer keeps a
            # prefix of what was queued: a debate marked done is fully recorded.
            rows = store.query(
                "select count(*) from debates where run_id = ? and status = 'done'", [run_id]
            ).rows
            held = f" {rows[0][0]}/{total} debates are fully recorded;"
    wal = Path(f"{error.path}.wal") if error.path else None
    keep = (
        f" (to continue elsewhere, copy {error.path} together with {wal.name})"
        if wal is not None and wal.exists()
        else ""
    )
    lines.append(
        f"Stopped: no call was sent after the failure;{held} the others continue from what was"
        f" recorded. Fix the cause{keep} and rerun: {command}"
    )
    return lines


def run_tournament(
    topics: Path,
    models: Path | None,
    db: Path,
    flags: Mapping[str, Any],
    *,
    run_id: str | None = None,
    quiet: bool = False,
    console: Console | None = None,
    argv: list[str] | None = None,
    limits: InputLimits | None = None,
) -> int:
    """Run (or continue) a tournament; returns the exit code. Raises UserError on bad input
    (`limits`: the caps on the input files and the plan size, from `--max-input-mb` and `--yes`).

    A write failure anywhere (setting up the run, during it, marking it finished, closing the
    file) returns `EXIT_WRITE` after one line naming the cause and the file.
    """
    console = console or Console(stderr=True, soft_wrap=True)
    config: TournamentConfig = load_tournament(topics, models, flags, limits)
    if models is None:
        from arena.defaults import DESCRIPTION

        console.print(DESCRIPTION, highlight=False)
    run_id = run_id or default_run_id(config.settings)
    command = continue_command(argv)
    with StopSignals() as signals:
        return _run(config, db, run_id, command, quiet, console, signals)


def _run(
    config: TournamentConfig,
    db: Path,
    run_id: str,
    command: str,
    quiet: bool,
    console: Console,
    signals: StopSignals,
) -> int:
    """Open the store, play, mark the run, close the store, report: `run_tournament`'s work,
    with the stop signals handled (`StopSignals`)."""
    try:
        store = Store.open(db)
    except WriteError as error:  # a full disk can show as soon as the file is opened
        console.print(f"error: {error}", highlight=False)
        return EXIT_WRITE
    interrupted = False
    summary: RunSummary | None = None
    failure: WriteError | None = None
    closing: WriteError | None = None
    tournament: Tournament | None = None
    try:
        try:
            existed = check_run(store, config, run_id)
            tournament = Tournament(config, store, run_id)
            record_run(store, config, run_id, command, now())
            store.serve_live()
            if existed:
                console.print(f"continuing run {run_id} in {db}", highlight=False)
            try:
                summary = asyncio.run(_play(tournament, console, quiet, signals))
            except (KeyboardInterrupt, asyncio.CancelledError):
                interrupted = True
            finish_run(store, run_id, _status(summary), now())
        except WriteError as error:
            failure = error
            total = len(tournament.plan) if tournament is not None else None
            for line in _write_failure_lines(error, store, run_id, total, command):
                console.print(line, highlight=False)
    finally:
        try:
            store.close()
        except WriteError as error:
            closing = error
    if failure is not None:
        return EXIT_WRITE
    if tournament is None:  # only a write failure leaves it unset and returns
        raise AssertionError("unreachable: the tournament is set up or a WriteError was raised")
    code = exit_code(summary, interrupted)
    with contextlib.suppress(OSError):  # the terminal went away (SIGHUP): the code still tells
        _report(tournament, summary, interrupted, config, command, console, signals.received)
    if closing is not None:
        # Everything was committed (the summary read it back); the checkpoint that folds the
        # write-ahead log into the file could not be written.
        report_unclosed(console, closing, command)
        return EXIT_WRITE
    return code


def report_unclosed(console: Console, closing: WriteError, command: str) -> None:
    """Say that the store could not be closed (its write-ahead log not folded in), where what is
    recorded is kept, and the command that continues."""
    console.print(f"error: {closing}", highlight=False)
    console.print(
        f"What is recorded is kept in {closing.path}.wal, which is replayed when the file is "
        f"opened next: keep the two files together. Fix the cause and rerun: {command}",
        highlight=False,
    )


def exit_code(summary: RunSummary | None, interrupted: bool) -> int:
    """The exit code of a run that ended so (see the module's docstring)."""
    if interrupted or summary is None:
        return EXIT_INTERRUPTED
    if summary.failed or summary.unconfirmed:
        return EXIT_FAILED
    if summary.not_started:
        return EXIT_BUDGET
    return EXIT_OK


def _report(
    tournament: Tournament,
    summary: RunSummary | None,
    interrupted: bool,
    config: TournamentConfig,
    command: str,
    console: Console,
    stopped_by: str | None = None,
) -> None:
    """Print how the run ended (`stopped_by`: the signal that stopped it, if one did)."""
    run_id = tournament.runner.run_id
    if interrupted or summary is None:
        p = tournament.progress
        by = f" by {stopped_by}" if stopped_by and stopped_by != "SIGINT" else ""
        console.print(
            f"Stopped{by}. {p.done}/{p.total} {p.unit}s finished, {p.steps} new {p.step}s"
            f" recorded; {p.step}s in flight were dropped.\nContinue with: {command}",
            highlight=False,
        )
        return
    for line in _summary_lines(summary):
        console.print(line, highlight=False)
    if summary.not_started:
        console.print(
            f"Budget of ${config.settings.budget_usd:.2f} reached (spent "
            f"${summary.spent_usd:.4f}): {summary.not_started} debates not started. "
            f"Raise --budget-usd and rerun to continue: {command}",
            highlight=False,
        )
    if summary.unconfirmed:
        console.print(
            f"{summary.unconfirmed} debates were played but the database does not hold all "
            f"their rows (turns, calls, verdicts); rerun to complete them: {command}",
            highlight=False,
        )
    if summary.failed:
        console.print(f"Some debates failed; rerun to retry them: {command}", highlight=False)
    if summary.failed or summary.unconfirmed or summary.not_started:
        return
    if summary.done == summary.skipped:
        console.print(f"run {run_id} is complete; nothing left to do", highlight=False)


def _status(summary: RunSummary | None) -> str:
    """The run's status: `complete` only when the store confirmed every debate of the plan."""
    if summary is None:
        return "interrupted"
    return "complete" if summary.done == summary.total else "incomplete"
