"""The `arena` command. Each subcommand is a thin layer over a module that does the work.

User mistakes (`UserError`) are printed as one line, `error: ...`, with exit code 2 and no
traceback. Heavy modules are imported inside the commands so that `arena --help` starts fast.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from arena.core.errors import UserError

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


class RankFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


class RankMethod(StrEnum):
    bt = "bt"
    elo = "elo"


class TieModel(StrEnum):
    half = "half"
    davidson = "davidson"


@app.command()
def rank(
    db: Path = DB_OPTION,
    run: str | None = typer.Option(None, "--run", help="Only this run's debates."),
    judge: str | None = typer.Option(
        None, "--judge", help="Rate by this judge's verdicts (default: each debate's majority)."
    ),
    topic: list[str] | None = typer.Option(None, "--topic", help="Only this topic id (repeat)."),
    category: list[str] | None = typer.Option(
        None, "--category", help="Only topics of this category (repeat)."
    ),
    method: RankMethod = typer.Option(
        RankMethod.bt, "--method", help="bt: Bradley-Terry (default); elo: bootstrapped online Elo."
    ),
    ties: TieModel = typer.Option(
        TieModel.half, "--ties", help="Ties as half a win, or Davidson's tie model (bt only)."
    ),
    anchor: str | None = typer.Option(
        None, "--anchor", help="Put this model at 1000 (default: the mean is 1000)."
    ),
    k: float = typer.Option(32.0, "--k", min=0.1, help="Elo K factor (rating over time, elo)."),
    rounds: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap rounds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    fmt: RankFormat = typer.Option(RankFormat.table, "--format", "-f", help="Output format."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the json, markdown or html output to this file."
    ),
) -> None:
    """Rank the models: ratings with bootstrap 95% intervals, judge quality, majority cycles.

    Bradley-Terry (Elo scale) by default; --format html writes a self-contained report with
    figures.
    """
    import json

    from eval.leaderboard import RankOptions, build_report
    from eval.render import html, markdown, terminal
    from storage import StoreError

    options = RankOptions(
        run_id=run,
        judge=judge,
        topics=tuple(topic or ()),
        categories=tuple(category or ()),
        method="elo" if method is RankMethod.elo else "bt",
        ties="davidson" if ties is TieModel.davidson else "half",
        rounds=rounds,
        seed=seed,
        anchor=anchor,
        k=k,
    )
    if out is not None and fmt is RankFormat.table:
        _fail("--out: choose --format json, markdown or html to write a file")
        return
    if out is not None and not out.parent.is_dir():
        _fail(f"--out: no directory {out.parent}")
        return
    try:
        report = build_report(db, options)
    except (StoreError, UserError) as error:
        _fail(str(error))
        return
    if fmt is RankFormat.table:
        from rich.console import Console

        terminal(report, Console())
        return
    text = {
        RankFormat.json: lambda: json.dumps(report, indent=1),
        RankFormat.markdown: lambda: markdown(report),
        RankFormat.html: lambda: html(report),
    }[fmt]()
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


# PairOptions field -> the flag that sets it, for one-line errors.
_PAIRS_FLAGS = {
    "max_per_key": "--max-per-key",
    "test_fraction": "--test-fraction",
    "min_agreement": "--min-agreement",
    "test_topics": "--test-topics",
    "context": "--context",
}


@app.command()
def pairs(
    out: Path = typer.Option(
        ..., "--out", help="Output: a .parquet or .jsonl file, or a folder for --format hf."
    ),
    db: Path = DB_OPTION,
    fmt: str | None = typer.Option(
        None,
        "--format",
        "-f",
        help="parquet, jsonl, or hf (a DatasetDict for TRL); default: from --out's suffix.",
    ),
    run: str | None = typer.Option(None, "--run", help="Only this run's debates."),
    chosen_model: list[str] | None = typer.Option(
        None, "--chosen-model", help="Keep pairs whose chosen text comes from this model (repeat)."
    ),
    rejected_model: list[str] | None = typer.Option(
        None, "--rejected-model", help="Keep pairs whose rejected text comes from this model."
    ),
    judge: str | None = typer.Option(
        None, "--judge", help="Outcomes by this judge's verdicts (default: each debate's majority)."
    ),
    min_agreement: float | None = typer.Option(
        None, "--min-agreement", help="Only debates whose winner got this share of valid verdicts."
    ),
    max_per_key: int | None = typer.Option(
        None, "--max-per-key", help="Seeded sample of at most N pairs per (topic, side, turn)."
    ),
    test_fraction: float | None = typer.Option(
        None, "--test-fraction", help="Share of topics held out as test."
    ),
    test_topics: list[str] | None = typer.Option(
        None, "--test-topics", help="Topic ids held out as test (comma-separated, or repeat)."
    ),
    context: str = typer.Option(
        "none",
        "--context",
        help="Prompt: the turn's task (none) or the chosen debate's turns before it (transcript).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the split."),
    memory_limit: str = typer.Option(
        "1GB", "--memory-limit", help="DuckDB's memory limit; it spills to disk beyond it."
    ),
) -> None:
    """Turn-level preference pairs (PERSUADE rule) for DPO, in TRL's conversational format."""
    from pydantic import ValidationError

    from pairing import PairOptions
    from pairing.export import export_pairs, format_for, summary_table
    from storage import StoreError

    topics = [t.strip() for item in test_topics or [] for t in item.split(",") if t.strip()]
    if topics and test_fraction is not None:
        _fail("give either --test-topics or --test-fraction, not both")
        return
    try:
        options = PairOptions(
            run_id=run,
            chosen_models=chosen_model or None,
            rejected_models=rejected_model or None,
            judge=judge,
            min_agreement=min_agreement,
            max_per_key=max_per_key,
            test_fraction=test_fraction or 0.0,
            test_topics=topics or None,
            seed=seed,
            context=context,  # checked by PairOptions
        )
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        where = _PAIRS_FLAGS.get(field, field)
        _fail(f"{where}: {first['msg'].removeprefix('Value error, ')}")
        return
    try:
        written = export_pairs(db, out, options, format_for(out, fmt), memory_limit)
    except (UserError, StoreError) as error:
        _fail(str(error))
        return
    typer.echo(f"wrote {written.total} pairs to {out}")
    if written.total:
        from rich.console import Console

        Console().print(summary_table(written))


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
