"""`arena rank`: ratings with bootstrap intervals, judge quality and majority cycles, as a
terminal table, JSON, Markdown or a self-contained HTML report (`eval.report`: a typed
`RankReport`, built once and rendered in the format asked for).

`--compare A B` shows, instead of the leaderboard, B's rating minus A's with an interval taken
within each of the same bootstrap rounds, and the two models' head-to-head record by side
(`eval.report.build_comparison`), as a terminal table, JSON or Markdown.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from arena.cli.common import DB_OPTION, EXIT_WRITE, fail, reported

if TYPE_CHECKING:
    from eval.report import RankOptions


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
    site: str | None = typer.Option(
        None,
        "--site",
        help="With --format html: link models and heatmap cells to the `arena view` site at this"
        " address (a folder relative to the report, or a URL).",
    ),
    compare: tuple[str, str] | None = typer.Option(
        None,
        "--compare",
        metavar="A B",
        help="Instead of the leaderboard: B's rating minus A's with a paired bootstrap "
        "interval, and their head-to-head record (table, json or markdown).",
    ),
) -> None:
    """Rank the models: ratings with bootstrap 95% intervals, judge quality, majority cycles.

    Bradley-Terry (Elo scale) by default; --format html writes a self-contained report with
    figures. --compare A B: B's rating minus A's, and how their debates against each other went.
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
    if site is not None and fmt is not RankFormat.html:
        fail("--site: only with --format html")
    if compare is not None and fmt is RankFormat.html:
        fail(
            "--compare: choose --format table, json or markdown (the HTML report is of all models)"
        )
    if out is not None and fmt is RankFormat.table:
        formats = "json or markdown" if compare is not None else "json, markdown or html"
        fail(f"--out: choose --format {formats} to write a file")
    if out is not None and not out.parent.is_dir():
        fail(f"--out: no directory {out.parent}")
    if out is not None:
        from arena.core.files import check_output

        with (
            reported()
        ):  # the database (any DuckDB file) is never an output; a taken name needs --force
            check_output(out, force=force, protected=[db])
    if compare is not None:
        _compare(db, options, compare, fmt, out, force)
        return
    with reported():
        report = build_report(db, options)
    if fmt is RankFormat.table:
        from rich.console import Console

        terminal(report, Console())
        return
    text = {
        RankFormat.json: lambda: json_text(report),
        RankFormat.markdown: lambda: markdown(report),
        RankFormat.html: lambda: html(report, None if site is None else site.rstrip("/") + "/"),
    }[fmt]()
    _emit(text, out, force=force, db=db)


def _compare(
    db: Path,
    options: RankOptions,
    models: tuple[str, str],
    fmt: RankFormat,
    out: Path | None,
    force: bool,
) -> None:
    """`--compare A B`: B - A and the head-to-head record, printed or written to `out`."""
    from eval.report import (
        build_comparison,
        comparison_json,
        comparison_markdown,
        comparison_terminal,
    )

    with reported():
        comparison = build_comparison(db, options, *models)
    if fmt is RankFormat.table:
        from rich.console import Console

        comparison_terminal(comparison, Console())
        return
    text = (
        comparison_json(comparison) if fmt is RankFormat.json else comparison_markdown(comparison)
    )
    _emit(text, out, force=force, db=db)


def _emit(text: str, out: Path | None, *, force: bool, db: Path) -> None:
    """Print `text`, or write it to `out` whole and say so."""
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
