"""`arena tournament`: load the config, open the store, play the debates, report.

Exit codes: 0 every debate finished, 1 some debates failed (rerun to retry them), 2 a user error
(nothing was called or written), 3 the budget stopped new debates (rerun with a higher
--budget-usd), 130 interrupted (rerun the printed command to continue).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from arena.config import TournamentConfig, load_tournament
from arena.core.clock import now
from arena.progress import show_progress
from arena.runner import Progress, Runner, RunSummary
from arena.runs import check_run, default_run_id, finish_run, record_run
from arena.schedule import RoundRobin
from arena.tasks.debate import DebateTask
from storage import Store

EXIT_OK, EXIT_FAILED, EXIT_USER, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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
    c = summary.calls
    rate = summary.steps / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    lines = [
        f"run {summary.run_id}: {summary.done}/{summary.total} {summary.unit}s done"
        + (f" ({summary.skipped} already recorded)" if summary.skipped else "")
        + (f", {summary.failed} failed" if summary.failed else ""),
        f"  {summary.steps} {summary.step}s ({rate:.1f}/s) and {summary.verdicts} verdicts in "
        f"{summary.elapsed_s:.1f} s; {c.calls} calls, {c.failed_attempts} failed attempts retried"
        f" or given up; {c.prompt_tokens + c.completion_tokens:,} tokens; ${c.cost_usd:.4f}",
    ]
    for unit_id, error in summary.errors[:5]:
        lines.append(f"  failed {unit_id}: {error}")
    if len(summary.errors) > 5:
        lines.append(f"  ... and {len(summary.errors) - 5} more (see debates.error)")
    return lines


async def _play(tournament: Tournament, console: Console, quiet: bool) -> RunSummary:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    if main is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, main.cancel)
    async with show_progress(tournament.progress, console, enabled=not quiet):
        return await tournament.run()


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
) -> int:
    """Run (or continue) a tournament; returns the exit code. Raises UserError on bad input."""
    console = console or Console(stderr=True, soft_wrap=True)
    config: TournamentConfig = load_tournament(topics, models, flags)
    if models is None:
        from arena.defaults import DESCRIPTION

        console.print(DESCRIPTION, highlight=False)
    run_id = run_id or default_run_id(config.settings)
    command = continue_command(argv)
    store = Store.open(db)
    interrupted = False
    summary: RunSummary | None = None
    try:
        existed = check_run(store, config, run_id)
        tournament = Tournament(config, store, run_id)
        record_run(store, config, run_id, command, now())
        store.serve_live()
        if existed:
            console.print(f"continuing run {run_id} in {db}", highlight=False)
        try:
            summary = asyncio.run(_play(tournament, console, quiet))
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
        status = "interrupted"
        if summary is not None:
            finished = summary.failed == 0 and summary.not_started == 0
            status = "complete" if finished else "incomplete"
        finish_run(store, run_id, status, now())
    finally:
        store.close()
    if interrupted or summary is None:
        p = tournament.progress
        console.print(
            f"Stopped. {p.done}/{p.total} {p.unit}s finished, {p.steps} new {p.step}s recorded; "
            f"{p.step}s in flight were dropped.\nContinue with: {command}",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    for line in _summary_lines(summary):
        console.print(line, highlight=False)
    if summary.not_started:
        console.print(
            f"Budget of ${config.settings.budget_usd:.2f} reached (spent "
            f"${summary.spent_usd:.4f}): {summary.not_started} debates not started. "
            f"Raise --budget-usd and rerun to continue: {command}",
            highlight=False,
        )
    if summary.failed:
        console.print(f"Some debates failed; rerun to retry them: {command}", highlight=False)
        return EXIT_FAILED
    if summary.not_started:
        return EXIT_BUDGET
    if summary.done == summary.skipped:
        console.print(f"run {run_id} is complete; nothing left to do", highlight=False)
    return EXIT_OK
