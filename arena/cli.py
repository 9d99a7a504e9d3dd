"""The `arena` command. Each subcommand is a thin layer over a module that does the work.

User mistakes (`UserError`) are printed as one line, `error: ...`, with exit code 2 and no
traceback. Heavy modules are imported inside the commands so that `arena --help` starts fast.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

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
