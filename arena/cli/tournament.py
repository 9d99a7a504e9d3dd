"""`arena tournament`: every pair of models debates every motion, on both sides, judged.

The work is in `arena.tournament.run_tournament`; this module turns flags into settings.
"""

from __future__ import annotations

from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, reported


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
) -> None:
    """Run a tournament: every pair of models debates every motion, on both sides, judged.

    Rerun the same command to continue an interrupted run; finished debates are not replayed.
    """
    from arena.tournament import run_tournament

    flags = {
        "turns": turns,
        "replicates": replicates,
        "seed": seed,
        "max_tokens": max_tokens,
        "judges": [j.strip() for j in judges.split(",") if j.strip()] if judges else None,
        "max_concurrency": concurrency,
        "budget_usd": budget_usd,
    }
    with reported():
        code = run_tournament(topics, models, db, flags, run_id=run, quiet=quiet)
    raise typer.Exit(code)
