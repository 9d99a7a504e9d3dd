"""`arena rank`: ratings with bootstrap intervals, judge quality and majority cycles, as a
terminal table, JSON, Markdown or a self-contained HTML report (`eval.report`: a typed
`RankReport`, built once and rendered in the format asked for).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, EXIT_WRITE, fail, reported


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
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """Rank the models: ratings with bootstrap 95% intervals, judge quality, majority cycles.

    Bradley-Terry (Elo scale) by default; --format html writes a self-contained report with
    figures.
    """
    from eval.report import RankOptions, build_report, html, json_text, markdown, terminal

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
        fail("--out: choose --format json, markdown or html to write a file")
    if out is not None and not out.parent.is_dir():
        fail(f"--out: no directory {out.parent}")
    if out is not None:
        from arena.core.files import check_output

        with (
            reported()
        ):  # the database (any DuckDB file) is never an output; a taken name needs --force
            check_output(out, force=force, protected=[db])
    with reported():
        report = build_report(db, options)
    if fmt is RankFormat.table:
        from rich.console import Console

        terminal(report, Console())
        return
    text = {
        RankFormat.json: lambda: json_text(report),
        RankFormat.markdown: lambda: markdown(report),
        RankFormat.html: lambda: html(report),
    }[fmt]()
    if out is None:
        typer.echo(text)
    else:
        _write(out, text if text.endswith("\n") else text + "\n", force=force, db=db)
        typer.echo(f"wrote {out}")


def _write(out: Path, text: str, *, force: bool, db: Path) -> None:
    """Write the report under a temporary name beside `out` and rename it into place: `out`
    holds the whole report or nothing. A full disk is one line and the write-failure code."""
    import errno

    from arena.core.files import atomic_output, remove_stale_scratch

    remove_stale_scratch(out.parent)  # what an earlier, killed run left
    with reported():
        try:
            with atomic_output(out, force=force, protected=[db]) as tmp:
                tmp.write_text(text, encoding="utf-8")
        except OSError as error:
            code = EXIT_WRITE if error.errno == errno.ENOSPC else 2
            fail(f"{out}: could not write the report: {error.strerror or error}", code=code)
