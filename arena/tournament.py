"""`arena tournament`: load the config, then play the debates as a `Job` of `arena.driver`.

The run's life (the store, stop signals, exit codes, write failures) is `arena.driver.drive`'s,
shared with the other kinds of run; this module says what a tournament is (the debate task over a
round robin), what the store holds of one when a write fails, and how its summary reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from arena.config import InputLimits, TournamentConfig, load_tournament
from arena.core.clock import now
from arena.driver import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USER,
    EXIT_WRITE,
    Job,
    StopSignals,
    continue_command,
    drive,
    exit_code,
    report_unclosed,
)
from arena.runner import Progress, Runner, RunSummary
from arena.runs import check_run, default_run_id, record_run
from arena.schedule import RoundRobin
from arena.tasks.debate import DebateTask
from storage import Store

__all__ = [
    "EXIT_BUDGET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USER",
    "EXIT_WRITE",
    "StopSignals",
    "Tournament",
    "continue_command",
    "exit_code",
    "report_unclosed",
    "run_tournament",
]


class Tournament:
    """A tournament: the debate task, played by the runner over a round robin."""

    def __init__(self, config: TournamentConfig, store: Store, run_id: str):
        settings = config.settings
        self.task = DebateTask(config, store, run_id)
        self.plan = RoundRobin(
            run_id, config.topics, [c.name for c in config.contestants], settings.replicates
        )
        self.runner = Runner.for_task(self.task, store, run_id, self.task.backends(), settings)

    @property
    def progress(self) -> Progress:
        return self.runner.progress

    async def run(self) -> RunSummary:
        return await self.runner.run(self.plan, len(self.plan))


class TournamentJob(Job):
    """A tournament as `arena.driver.drive` plays it."""

    def __init__(self, config: TournamentConfig, run_id: str):
        self.config = config
        self.run_id = run_id
        self.tournament: Tournament | None = None

    def start(self, store: Store, command: str) -> bool:
        existed = check_run(store, self.config, self.run_id)
        self.tournament = Tournament(self.config, store, self.run_id)
        self.runner: Runner = self.tournament.runner
        record_run(store, self.config, self.run_id, command, now())
        return existed

    async def play(self) -> RunSummary:
        if self.tournament is None:
            raise AssertionError("unreachable: play before start")
        return await self.tournament.run()

    def held(self, store: Store) -> str:
        if self.tournament is None or not len(self.tournament.plan):
            return ""
        # `done` is queued after every other row of a debate, and the writer keeps a prefix of
        # what was queued: a debate marked done is fully recorded.
        rows = store.query(
            "select count(*) from debates where run_id = ? and status = 'done'", [self.run_id]
        ).rows
        return f" {rows[0][0]}/{len(self.tournament.plan)} debates are fully recorded;"

    def report(
        self,
        summary: RunSummary | None,
        command: str,
        console: Console,
        stopped_by: str | None,
    ) -> None:
        _report(self.runner, summary, self.config, command, console, stopped_by)


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
    """Run (or continue) a tournament; returns the exit code (`arena.driver`). Raises UserError
    on bad input (`limits`: the caps on the input files and the plan size, from
    `--max-input-mb` and `--yes`).

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
        return drive(TournamentJob(config, run_id), db, command, quiet, console, signals)


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


def _report(
    runner: Runner,
    summary: RunSummary | None,
    config: TournamentConfig,
    command: str,
    console: Console,
    stopped_by: str | None = None,
) -> None:
    """Print how the run ended (`stopped_by`: the signal that stopped it, if one did)."""
    run_id = runner.run_id
    if summary is None:
        p = runner.progress
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
