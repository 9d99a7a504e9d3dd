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

The store's life (open, serve live reads, mark the run, close, report) is `arena.driver.drive`'s,
shared with tournaments; `BBQJob` says what a BBQ run is and words its summary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from arena.config.bbq import DESCRIPTION, BBQConfig, load_bbq_config
from arena.config.inputs import InputLimits
from arena.core.clock import now
from arena.driver import Job, StopSignals, Wording, continue_command, drive, report_items
from arena.protocol.bbq import BBQItem
from arena.runner import Runner, RunSummary
from arena.tasks.bbq import (
    BBQPlan,
    BBQTask,
    check_run,
    default_run_id,
    item_row,
    record_run,
    select_items,
)
from storage import Store


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
        job = BBQJob(config, items, data, run_id, db)
        return drive(job, db, command, quiet, console, signals)


class BBQJob(Job):
    """A BBQ run as `arena.driver.drive` plays it."""

    def __init__(
        self,
        config: BBQConfig,
        items: Sequence[BBQItem],
        data: str | os.PathLike[str],
        run_id: str,
        db: Path,
    ):
        self.config = config
        self.db = db
        self.items = items
        self.data = data
        self.run_id = run_id
        self.plan: BBQPlan | None = None

    def start(self, store: Store, command: str) -> bool:
        config = self.config
        task = BBQTask(config, self.items, store, self.run_id)
        rows = [item_row(self.run_id, shown, config.settings) for shown in task.shown.values()]
        existed = check_run(store, config, self.run_id, rows)
        self.plan = task.plan()
        self.runner = Runner.for_task(task, store, self.run_id, task.backends(), config.settings)
        record_run(store, config, self.run_id, self.data, len(self.items), command, now())
        return existed

    def held(self, store: Store) -> str:
        if self.plan is None:
            return ""
        rows = store.query(
            "select count(*) from bbq_responses where run_id = ?", [self.run_id]
        ).rows
        return f" {rows[0][0]}/{len(self.plan)} answers are recorded;"

    def report(
        self,
        summary: RunSummary | None,
        command: str,
        console: Console,
        stopped_by: str | None,
    ) -> None:
        report_items(
            console,
            self.runner,
            summary,
            Wording("answers", "answers"),
            command,
            stopped_by,
            f"Scores: arena bbq report --db {self.db} --run {self.run_id}",
        )
