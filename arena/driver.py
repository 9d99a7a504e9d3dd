"""The life of a run, shared by every kind (tournaments, BBQ, PCP): open the store, set the run
up, play it under the stop signals with a progress display, mark it, close the store, report.

A kind of run is a `Job`: it checks and records its run against the store (`start`), owns its
`Runner`, and words its own summary (`report`). `drive` does the rest, the same way for all:

Exit codes: 0 every unit finished, 1 some units failed or are not fully recorded (rerun to
retry them), 2 a user error (nothing was called or written), 3 the budget stopped new units
(rerun with a higher --budget-usd), 4 the database could not be written (a full disk, memory
running out: one line names the cause and the file; no call was sent after the failure, every
unit is fully recorded or resumable, so the same command continues once the cause is fixed),
130 interrupted (rerun the printed command to continue).

Interrupted means Ctrl-C, or SIGTERM, SIGHUP or SIGQUIT, which all end a run the same way
(`StopSignals`): units in flight are dropped, the run is marked `interrupted`, the command that
continues it is printed, the live socket and `<db>.live.json` are removed as the store closes.
A signal never cuts a write to the store in half: while the run is set up or wrapped up it is
noted and acted on at the next safe point. Only SIGKILL leaves the socket and live.json behind;
the next run to start removes them (storage/live.py).

The summary counts what the store holds, read back after the last rows were committed; the run is
marked `complete` only when the store confirms every unit of the plan (`Task.tally`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import socket
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol

from rich.console import Console

from arena.core.clock import now
from arena.progress import show_progress
from arena.runner import Runner, RunSummary
from arena.runs import finish_run
from storage import Store, WriteError

EXIT_OK, EXIT_FAILED, EXIT_USER, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_WRITE = 4
"""The database could not be written (disk full, out of memory): not a mistake in the input."""


class Plan(Protocol):
    """What a job plays: units read lazily, and how many there are."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...


class Job(ABC):
    """One run of some kind, as `drive` plays it."""

    runner: Runner
    """Set by `start`."""
    plan: Plan | None = None
    """The units to play, set by `start` for the default `play`."""

    @abstractmethod
    def start(self, store: Store, command: str) -> bool:
        """Check the run against what the store holds (raising `UserError` on a mismatch), set
        up `runner` and record the run; True if the run existed before."""

    async def play(self) -> RunSummary:
        """Play `plan` with `runner` (a kind whose plan is not a sized iterable overrides it)."""
        if self.plan is None:
            raise AssertionError("unreachable: play before start")
        return await self.runner.run(self.plan, len(self.plan))

    def held(self, store: Store) -> str:
        """What the store holds of the run, as a clause for the write-failure message
        (" 3/12 debates are fully recorded;"), or ''. It may raise: the file may be unreadable."""
        return ""

    @abstractmethod
    def report(
        self,
        summary: RunSummary | None,
        command: str,
        console: Console,
        stopped_by: str | None,
    ) -> None:
        """Print how the run ended (`summary` None: interrupted; `stopped_by`: the signal)."""


def continue_command(argv: list[str] | None = None) -> str:
    """The command line that continues this run (the same one)."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["arena", *args])


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""Signals that stop a run as Ctrl-C does (SIGKILL cannot be caught)."""


class StopSignals:
    """While a run goes, SIGINT, SIGTERM, SIGHUP and SIGQUIT all stop it as Ctrl-C does.

    Used as a context manager around everything that touches the store (the handlers are
    restored on exit). The first signal is noted (`received`, its name); while the units are
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


def drive(
    job: Job,
    db: Path,
    command: str,
    quiet: bool,
    console: Console,
    signals: StopSignals,
) -> int:
    """Open the store, start the job, play it, mark the run, close the store, report; returns
    the exit code (see the module's docstring). Raises `UserError` when the job's `start` finds
    the stored run at odds with this command (nothing has been written then)."""
    try:
        store = Store.open(db)
    except WriteError as error:  # a full disk can show as soon as the file is opened
        console.print(f"error: {error}", highlight=False)
        return EXIT_WRITE
    interrupted = False
    summary: RunSummary | None = None
    failure: WriteError | None = None
    closing: WriteError | None = None
    started = False
    try:
        try:
            existed = job.start(store, command)
            started = True
            store.serve_live()
            if existed:
                console.print(f"continuing run {job.runner.run_id} in {db}", highlight=False)
            try:
                summary = asyncio.run(_play(job, console, quiet, signals))
            except (KeyboardInterrupt, asyncio.CancelledError):
                interrupted = True
            finish_run(store, job.runner.run_id, status(summary), now())
        except WriteError as error:
            failure = error
            for line in _write_failure_lines(error, job, store, command):
                console.print(line, highlight=False)
    finally:
        try:
            store.close()
        except WriteError as error:
            closing = error
    if failure is not None:
        return EXIT_WRITE
    if not started:  # only a write failure leaves it unstarted and returns
        raise AssertionError("unreachable: the job started or a WriteError was raised")
    code = exit_code(summary, interrupted)
    with contextlib.suppress(OSError):  # the terminal went away (SIGHUP): the code still tells
        job.report(None if interrupted else summary, command, console, signals.received)
    if closing is not None:
        # Everything was committed (the summary read it back); the checkpoint that folds the
        # write-ahead log into the file could not be written.
        report_unclosed(console, closing, command)
        return EXIT_WRITE
    return code


async def _play(job: Job, console: Console, quiet: bool, signals: StopSignals) -> RunSummary:
    main = asyncio.current_task()
    if main is None:  # asyncio.run always runs a task
        raise AssertionError("unreachable: _play runs outside a task")
    with signals.cancelling(asyncio.get_running_loop(), main):
        async with show_progress(job.runner.progress, console, enabled=not quiet):
            return await job.play()


def _write_failure_lines(error: WriteError, job: Job, store: Store, command: str) -> list[str]:
    """What a write failure prints: the cause and the file on one line, then what the file holds
    (read from what was committed, when it can still be read) and how to continue."""
    lines = [f"error: {error}"]
    held = ""
    with contextlib.suppress(Exception):  # the file may be unreadable by now: then say less
        held = job.held(store)
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


def status(summary: RunSummary | None) -> str:
    """The run's status: `complete` only when the store confirmed every unit of the plan."""
    if summary is None:
        return "interrupted"
    return "complete" if summary.done == summary.total else "incomplete"


@dataclass(frozen=True)
class Wording:
    """How an item-by-item run (BBQ, PCP) names what it did, for `report_items`."""

    units: str
    """What a unit is, in the plural ('answers', 'pairs')."""
    steps: str
    """What a unit's recorded steps are ('answers', 'responses')."""
    verdicts: str | None = None
    """What its judge readings are, if it has any ('judge readings')."""


def report_items(
    console: Console,
    runner: Runner,
    summary: RunSummary | None,
    wording: Wording,
    command: str,
    stopped_by: str | None,
    next_step: str | None,
    details: Sequence[str] = (),
) -> None:
    """How an item-by-item run ended (`details`: lines of the kind's own, after the counts),
    and what to do next (`next_step`: the report command, if any)."""
    w = wording
    if summary is None:
        p = runner.progress
        by = f" by {stopped_by}" if stopped_by and stopped_by != "SIGINT" else ""
        judged = f" and {p.verdicts} {w.verdicts}" if w.verdicts else ""
        console.print(
            f"Stopped{by}. {p.done}/{p.total} {w.units} done ({p.steps} {w.steps}{judged} "
            f"recorded in this session); calls in flight were dropped.\nContinue with: {command}",
            highlight=False,
        )
        return
    c = summary.calls
    rate = summary.steps / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    judged = f" and {summary.verdicts} {w.verdicts}" if w.verdicts else ""
    console.print(
        f"run {summary.run_id}: {summary.done}/{summary.total} {w.units} done"
        + (f" ({summary.skipped} already recorded)" if summary.skipped else "")
        + (f", {summary.failed} failed" if summary.failed else "")
        + f"\n  this session: {summary.steps} {w.steps} ({rate:.1f}/s){judged} in "
        f"{summary.elapsed_s:.1f} s; {c.calls} calls, {c.failed_attempts} failed attempts retried"
        f" or given up; {c.prompt_tokens + c.completion_tokens:,} tokens; ${c.cost_usd:.4f}",
        highlight=False,
    )
    for line in details:
        console.print(line, highlight=False)
    for unit_id, error in summary.errors[:5]:
        console.print(f"  failed {unit_id}: {error}", highlight=False)
    if len(summary.errors) > 5:
        console.print(f"  ... and {len(summary.errors) - 5} more (see calls.error)")
    if summary.not_started:
        console.print(
            f"Budget reached (spent ${summary.spent_usd:.4f}): {summary.not_started} {w.units} "
            f"not started. Raise --budget-usd and rerun to continue: {command}",
            highlight=False,
        )
    if summary.failed or summary.unconfirmed:
        console.print(
            f"Some {w.units} are incomplete; rerun to finish them: {command}", highlight=False
        )
        return
    if not summary.not_started and next_step is not None:
        console.print(next_step, highlight=False)
