"""The `arena` command. Each subcommand is a thin layer over a module that does the work.

User mistakes (`UserError`) are printed as one line, `error: ...`, with exit code 2 and no
traceback. Heavy modules are imported inside the commands so that `arena --help` starts fast.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Literal

import typer

from arena.errors import UserError

app = typer.Typer(
    name="arena",
    help="Tournaments of LLM debates, recorded in DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DB_OPTION = typer.Option(Path("arena.duckdb"), "--db", help="The DuckDB file.")


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
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
    from storage import StoreError

    flags = {
        "turns": turns,
        "replicates": replicates,
        "seed": seed,
        "max_tokens": max_tokens,
        "judges": [j.strip() for j in judges.split(",") if j.strip()] if judges else None,
        "max_concurrency": concurrency,
        "budget_usd": budget_usd,
    }
    try:
        code = run_tournament(topics, models, db, flags, run_id=run, quiet=quiet)
    except (UserError, StoreError) as error:
        _fail(str(error))
        return
    raise typer.Exit(code)


@app.command()
def sql(
    query: str = typer.Argument(..., help="A read-only SQL query (SELECT, DESCRIBE, ...)."),
    db: Path = DB_OPTION,
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
) -> None:
    """Query the database, read-only; works while a tournament is writing to it."""
    from arena.sqlcmd import render_result
    from storage import StoreError, run_query

    try:
        result = run_query(db, query)
    except (StoreError, UserError) as error:
        _fail(str(error))
        return
    render_result(result, fmt.value, sys.stdout)


@app.command()
def rank(
    db: Path = DB_OPTION,
    run: str | None = typer.Option(None, "--run", help="Only this run's debates."),
    judge: str | None = typer.Option(
        None, "--judge", help="Rate by this judge's verdicts (default: each debate's majority)."
    ),
    rounds: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap rounds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
) -> None:
    """Rank the models: Bradley-Terry ratings (Elo scale) with bootstrap 95% intervals."""
    import json

    from eval.leaderboard import leaderboard
    from storage import StoreError

    try:
        board = leaderboard(db, run_id=run, judge=judge, rounds=rounds, seed=seed)
    except (StoreError, UserError) as error:
        _fail(str(error))
        return
    if not board.models:
        _fail(f"no judged debates between two or more models in {db}")
        return
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(board.as_json(), indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("rank", "model", "rating", "95% CI", "debates", "win rate")
    for m in board.models:
        table.add_row(
            str(m["rank"]),
            m["model"],
            f"{m['rating']:.0f}",
            f"{m['lower']:.0f} to {m['upper']:.0f}",
            str(m["debates"]),
            f"{m['win_rate']:.3f}",
        )
    console = Console()
    console.print(table)
    side = board.side_advantage
    console.print(
        f"{board.battles} battles ({board.judge or 'majority verdicts'}); FOR-side advantage "
        f"{side['for_advantage']:+.0f} Elo (95% CI {side['lower']:+.0f} to {side['upper']:+.0f})",
        highlight=False,
    )


@app.command()
def pairs(
    out: Path = typer.Option(..., "--out", help="Output file (.parquet or .jsonl)."),
    db: Path = DB_OPTION,
    run: str | None = typer.Option(None, "--run", help="Only this run's debates."),
    chosen_model: list[str] | None = typer.Option(
        None, "--chosen-model", help="Keep pairs whose chosen text comes from this model."
    ),
    max_per_key: int | None = typer.Option(
        None, "--max-per-key", min=1, help="Seeded sample of at most N pairs per key."
    ),
    test_fraction: float | None = typer.Option(
        None, "--test-fraction", min=0.0, max=1.0, help="Share of topics held out as test."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the split."),
) -> None:
    """Turn-level preference pairs (PERSUADE rule) for DPO, in TRL's conversational format."""
    import duckdb

    from pairing import PairOptions, write_pairs

    fmt: Literal["parquet", "jsonl"] = "jsonl" if out.suffix == ".jsonl" else "parquet"
    options = PairOptions(
        run_id=run,
        chosen_models=chosen_model or None,
        max_per_key=max_per_key,
        test_fraction=test_fraction or 0.0,
        seed=seed,
    )
    if not db.exists():
        _fail(f"no database at {db}")
        return
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            written = write_pairs(con, out, options, format=fmt)
    except duckdb.IOException as error:
        _fail(f"cannot read {db} (is a tournament running on it?): {error}")
        return
    typer.echo(f"wrote {written} pairs to {out}")


def _version(value: bool) -> None:
    if value:
        from arena import __version__

        typer.echo(f"arena {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Tournaments of LLM debates, recorded in DuckDB."""


def main() -> None:
    app()
