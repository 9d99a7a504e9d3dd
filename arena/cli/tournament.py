"""`arena tournament`: every pair of models debates every motion, on both sides, judged.

The work is in `arena.tournament.run_tournament`; this module turns flags into settings, and into
the limits the config is read under (`arena.config.inputs.InputLimits`): `--max-input-mb` raises
the size cap on the input files, `--yes` lets a plan of more than 100,000 debates start.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, fail, reported

DEFAULT_MAX_INPUT_MB = 10.0
"""The size cap on an input file, in MB, unless `--max-input-mb` says otherwise."""


def tournament(
    topics: Path = typer.Option(..., "--topics", help="YAML file of motions."),
    models: Path | None = typer.Option(
        None, "--models", help="YAML file of models and judges (default: the embedded model)."
    ),
    db: Path = DB_OPTION,
    run: str | None = typer.Option(None, "--run", help="Run name (default: from the settings)."),
    turns: int | None = typer.Option(None, help="Turns per debate (default 10)."),
    replicates: int | None = typer.Option(None, help="Debates per (topic, FOR, AGAINST)."),
    seed: int | None = typer.Option(None, help="Seed for everything random."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Max new tokens per turn."),
    judges: str | None = typer.Option(None, help="Comma-separated judge names to use."),
    concurrency: int | None = typer.Option(None, help="Calls in flight at once, all models."),
    budget_usd: float | None = typer.Option(
        None, "--budget-usd", help="Start no new debate once the run has spent this much."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Run a plan of any size (over 100,000 debates needs it)."
    ),
    max_input_mb: float = typer.Option(
        DEFAULT_MAX_INPUT_MB, "--max-input-mb", help="Refuse input files larger than this (MB)."
    ),
) -> None:
    """Run a tournament: every pair of models debates every motion, on both sides, judged.

    Rerun the same command to continue an interrupted run; finished debates are not replayed.
    """
    from arena.config.inputs import MB, InputLimits
    from arena.tournament import run_tournament

    if not math.isfinite(max_input_mb) or max_input_mb <= 0:
        fail(f"command line: --max-input-mb: must be a finite number above 0, not {max_input_mb}")
    flags = {
        "turns": turns,
        "replicates": replicates,
        "seed": seed,
        "max_tokens": max_tokens,
        "judges": [j.strip() for j in judges.split(",") if j.strip()] if judges else None,
        "max_concurrency": concurrency,
        "budget_usd": budget_usd,
    }
    limits = InputLimits(max_bytes=int(max_input_mb * MB), confirmed=yes)
    with reported():
        code = run_tournament(topics, models, db, flags, run_id=run, quiet=quiet, limits=limits)
    raise typer.Exit(code)
