"""`arena pcp run`: read the pairs, models and judges, then answer and judge every pair.

The run's life (the store, live reads, stop signals, exit codes, write failures) is
`arena.driver.drive`'s, shared with tournaments and BBQ runs; `PCPJob` says what a PCP run is
(the PCP task, `arena.tasks.pcp`, in the generic runner) and words its summary. The same command
continues an interrupted run, asking only for the responses and readings the store lacks.

Everything the user gave is read and checked before the store is opened: a pairs file of the
wrong shape, an unknown template name, a CSV without `prompt_a`, a bad models.yaml is one line
naming the file and field, exit code 2, and the database file is not even created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from arena.config.inputs import InputLimits
from arena.config.pcp import DESCRIPTION, PCPConfig, load_pcp_config
from arena.core.clock import now
from arena.driver import Job, StopSignals, Wording, continue_command, drive, report_items
from arena.protocol.pcp import PairItem, Templates, load_templates
from arena.runner import Runner, RunSummary
from arena.tasks.pcp import PCPPlan, PCPTask, check_run, default_run_id, record_run, select_pairs
from storage import Store


def run_pcp(
    pairs: str | os.PathLike[str],
    templates: Path | None,
    models: Path | None,
    judges: Path | None,
    db: Path,
    flags: Mapping[str, Any],
    *,
    run_id: str | None = None,
    quiet: bool = False,
    console: Console | None = None,
    argv: list[str] | None = None,
    limits: InputLimits | None = None,
) -> int:
    """Run (or continue) a PCP run; returns the exit code (`arena.driver`). Raises `UserError`
    on bad input, before the database is opened. `templates` is needed for a topic-pair file."""
    console = console or Console(stderr=True, soft_wrap=True)
    config = load_pcp_config(models, judges, flags, limits)
    loaded: Templates | None = load_templates(templates) if templates is not None else None
    items = select_pairs(pairs, loaded, config.settings)
    if models is None:
        console.print(DESCRIPTION, highlight=False)
    run_id = run_id or default_run_id(pairs, config.settings)
    command = continue_command(argv)
    with StopSignals() as signals:
        job = PCPJob(config, items, pairs, run_id, db)
        return drive(job, db, command, quiet, console, signals)


class PCPJob(Job):
    """A PCP run as `arena.driver.drive` plays it."""

    def __init__(
        self,
        config: PCPConfig,
        items: Sequence[PairItem],
        pairs: str | os.PathLike[str],
        run_id: str,
        db: Path,
    ):
        self.config = config
        self.items = items
        self.pairs = pairs
        self.run_id = run_id
        self.db = db
        self.plan: PCPPlan | None = None

    def start(self, store: Store, command: str) -> bool:
        config = self.config
        existed = check_run(store, config, self.run_id)
        task = PCPTask(config, self.items, store, self.run_id)
        self.plan = task.plan()
        self.runner = Runner.for_task(task, store, self.run_id, task.backends(), config.settings)
        record_run(store, config, self.run_id, self.pairs, len(self.items), command, now())
        return existed

    def held(self, store: Store) -> str:
        if self.plan is None:
            return ""
        rows = store.query(
            "select count(distinct unit_id) from pcp_responses where run_id = ?", [self.run_id]
        ).rows
        return f" {rows[0][0]}/{len(self.plan)} pairs have responses recorded;"

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
            Wording("pairs", "responses", "judge readings"),
            command,
            stopped_by,
            f"Scores: arena pcp report --db {self.db} --run {self.run_id}",
        )
