"""`arena bbq run`: read the items and models, open the store, ask every answer, report.

The same life as a tournament's (`arena.tournament`), with the BBQ task (`arena.tasks.bbq`) in
the generic runner: concurrency, retries, the budget, the progress display, live reads
(`arena sql` works mid-run), and resuming (a rerun of the same command asks only for the answers
the store does not hold, after a Ctrl-C or a kill -9 alike).

Everything the user gave is read and checked before the store is opened: a missing `--data`
folder, a broken line of a BBQ file, an unknown category or a bad models.yaml is one line naming
the file and line, exit code 2, and the database file is not even created.

Exit codes, as for tournaments: 0 every answer recorded, 1 some calls failed or answers are not
fully recorded (rerun to retry them), 2 a user error, 3 the budget stopped new answers, 4 the
database could not be written (a full disk: one line names the cause; rerun once it is fixed),
130 interrupted by Ctrl-C, SIGTERM, SIGHUP or SIGQUIT (rerun the printed command to continue).

Simplified on purpose: the store's life (open, serve live reads, mark the run, close, report) is
written here again rather than shared with `arena.tournament`, whose messages speak of debates;
the stop-signal handling is shared (`StopSignals`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from arena.config.bbq import DESCRIPTION, BBQConfig, load_bbq_config
from arena.config.inputs import InputLimits
from arena.core.clock import now
from arena.progress import show_progress
from arena.protocol.bbq import BBQItem
from arena.runner import Runner, RunSummary
from arena.runs import finish_run
from arena.tasks.bbq import (
    BBQPlan,
    BBQTask,
    check_run,
    default_run_id,
    item_row,
    record_run,
    select_items,
)
from arena.tournament import (
    EXIT_WRITE,
    StopSignals,
    continue_command,
    exit_code,
    report_unclosed,
)
from storage import Store, WriteError


def run_bbq(
    data: str | os.PathLike[str],
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
    """Run (or continue) a BBQ run; returns the exit code. Raises `UserError` (a `ConfigError`
    naming file and line) on bad input, before the database is opened."""
    console = console or Console(stderr=True, soft_wrap=True)
    config = load_bbq_config(models, flags, limits)
    items = select_items(data, config.settings)
    if models is None:
        console.print(DESCRIPTION, highlight=False)
    run_id = run_id or default_run_id(config.settings)
    command = continue_command(argv)
    with StopSignals() as signals:
        return _run(config, items, data, db, run_id, command, quiet, console, signals)


async def _play(
    runner: Runner, plan: BBQPlan, console: Console, quiet: bool, signals: StopSignals
) -> RunSummary:
    main = asyncio.current_task()
    if main is None:  # asyncio.run always runs a task
        raise AssertionError("unreachable: _play runs outside a task")
    with signals.cancelling(asyncio.get_running_loop(), main):
        async with show_progress(runner.progress, console, enabled=not quiet):
            return await runner.run(plan, len(plan))


def _run(
    config: BBQConfig,
    items: Sequence[BBQItem],
    data: str | os.PathLike[str],
    db: Path,
    run_id: str,
    command: str,
    quiet: bool,
    console: Console,
    signals: StopSignals,
) -> int:
    """Open the store, play, mark the run, close the store, report."""
    try:
        store = Store.open(db)
    except WriteError as error:
        console.print(f"error: {error}", highlight=False)
        return EXIT_WRITE
    summary: RunSummary | None = None
    interrupted = False
    failure: WriteError | None = None
    closing: WriteError | None = None
    runner: Runner | None = None
    try:
        try:
            task = BBQTask(config, items, store, run_id)
            rows = [item_row(run_id, shown, config.settings) for shown in task.shown.values()]
            existed = check_run(store, config, run_id, rows)
            plan = task.plan()
            runner = Runner(
                task,
                store,
                run_id,
                task.backends(),
                max_concurrency=config.settings.max_concurrency,
                request_timeout_s=config.settings.request_timeout_s,
                retry=config.settings.retry,
                budget_usd=config.settings.budget_usd,
            )
            record_run(store, config, run_id, data, len(items), command, now())
            store.serve_live()
            if existed:
                console.print(f"continuing run {run_id} in {db}", highlight=False)
            try:
                summary = asyncio.run(_play(runner, plan, console, quiet, signals))
            except (KeyboardInterrupt, asyncio.CancelledError):
                interrupted = True
            status = "interrupted" if summary is None else _status(summary)
            finish_run(store, run_id, status, now())
        except WriteError as error:
            failure = error
            console.print(f"error: {error}", highlight=False)
            console.print(
                "Stopped: no call was sent after the failure; every answer recorded is kept. "
                f"Fix the cause and rerun: {command}",
                highlight=False,
            )
    finally:
        try:
            store.close()
        except WriteError as error:
            closing = error
    if failure is not None:
        return EXIT_WRITE
    if runner is None:
        raise AssertionError("unreachable: the runner is set up or a WriteError was raised")
    code = exit_code(summary, interrupted)
    with contextlib.suppress(OSError):  # the terminal went away (SIGHUP): the code still tells
        _report(runner, summary, run_id, db, command, console, signals.received)
    if closing is not None:
        report_unclosed(console, closing, command)
        return EXIT_WRITE
    return code


def _status(summary: RunSummary) -> str:
    """`complete` only when the store confirmed every answer of the plan."""
    return "complete" if summary.done == summary.total else "incomplete"


def _report(
    runner: Runner,
    summary: RunSummary | None,
    run_id: str,
    db: Path,
    command: str,
    console: Console,
    stopped_by: str | None,
) -> None:
    """How the run ended, and what to do next."""
    if summary is None:
        p = runner.progress
        by = f" by {stopped_by}" if stopped_by and stopped_by != "SIGINT" else ""
        console.print(
            f"Stopped{by}. {p.done}/{p.total} answers recorded ({p.steps} in this session); "
            f"answers in flight were dropped.\nContinue with: {command}",
            highlight=False,
        )
        return
    c = summary.calls
    rate = summary.steps / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    console.print(
        f"run {run_id}: {summary.done}/{summary.total} answers recorded"
        + (f" ({summary.skipped} already recorded)" if summary.skipped else "")
        + (f", {summary.failed} failed" if summary.failed else "")
        + f"\n  this session: {summary.steps} answers ({rate:.1f}/s) in {summary.elapsed_s:.1f} s;"
        f" {c.calls} calls, {c.failed_attempts} failed attempts retried or given up;"
        f" {c.prompt_tokens + c.completion_tokens:,} tokens; ${c.cost_usd:.4f}",
        highlight=False,
    )
    for unit_id, error in summary.errors[:5]:
        console.print(f"  failed {unit_id}: {error}", highlight=False)
    if len(summary.errors) > 5:
        console.print(f"  ... and {len(summary.errors) - 5} more (see calls.error)")
    if summary.not_started:
        console.print(
            f"Budget reached (spent ${summary.spent_usd:.4f}): {summary.not_started} answers not "
            f"asked. Raise --budget-usd and rerun to continue: {command}",
            highlight=False,
        )
    if summary.failed or summary.unconfirmed:
        console.print(f"Some answers are missing; rerun to ask again: {command}", highlight=False)
        return
    if not summary.not_started:
        console.print(f"Scores: arena bbq report --db {db} --run {run_id}", highlight=False)
