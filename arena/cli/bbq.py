"""`arena bbq`: the BBQ bias benchmark, a group of commands.

- `arena bbq score --predictions FILE_OR_DIR --field NAME`: score predictions another tool made
  (BBQ lines, each carrying its prediction in a field: an option letter, an index 0-2 or the
  answer's text) with `eval.bbq`'s metrics, as a terminal table, Markdown or JSON. Several
  `--field`s score several models over the same items, each later one also compared with the
  first (paired bootstrap).
- `arena bbq run --data DIR [--models models.yaml] --db FILE`: ask models the items through the
  runner (`arena.bbq_run`, `arena.tasks.bbq`), recording every answer; the same command
  continues an interrupted run. Without `--models`, the embedded model answers.
- `arena bbq report --db FILE`: a run's scores, read from the store (`eval.bbq_store`), mid-run
  or after: table, Markdown, JSON or a self-contained HTML page; `--compare A B` adds the paired
  differences.
- `arena bbq export --data DIR --split train --out FILE_OR_DIR`: the prompt-only dataset for
  GRPO (`pairing.bbq_export`), with the columns `pairing.rewards.bbq_reward` reads.

A mistake in the input (a missing file, a broken line, an item missing a field, an unknown
category, a line without the prediction field) is one line naming the file, line and field, exit
code 2, and nothing is written (`arena bbq run` does not even create the database). `--out`
appears whole or not at all (`arena.core.files`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from arena.cli.common import (
    DB_OPTION,
    EXIT_WRITE,
    check_report_out,
    emit,
    fail,
    interruptible,
    reported,
)

app = typer.Typer(
    name="bbq",
    help="The BBQ bias benchmark: run models on it, report their scores, score predictions, "
    "export training prompts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class BBQFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"


class ReportFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"
    html = "html"


class SplitName(StrEnum):
    dev = "dev"
    train = "train"
    all = "all"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"
    hf = "hf"


def _names(values: list[str] | None) -> list[str] | None:
    """Repeated or comma-separated names, in order, without repeats; None when none."""
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(names)) or None


@app.command()
def score(
    predictions: Path = typer.Option(
        ...,
        "--predictions",
        help="A JSON Lines file of BBQ items with predictions, or a folder of *.jsonl files.",
    ),
    field: list[str] | None = typer.Option(
        None,
        "--field",
        help="The field holding the prediction (repeat to score several; default: prediction).",
    ),
    fmt: BBQFormat = typer.Option(BBQFormat.table, "--format", "-f", help="Output format."),
    rounds: int = typer.Option(
        1000, "--bootstrap", min=0, max=100_000, help="Bootstrap rounds (0: no intervals)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the bootstrap."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the markdown or json output to this file."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """Score BBQ predictions: accuracy, s_DIS, s_AMB and its decomposition, per category."""
    fields = list(dict.fromkeys(field or ["prediction"]))
    if out is not None and fmt is BBQFormat.table:
        fail("--out: choose --format json or markdown to write a file")
    if out is not None and not out.parent.is_dir():
        fail(f"--out: no directory {out.parent}")
    if out is not None:
        from arena.core.files import check_output

        with reported():
            check_output(out, force=force)

    from arena.protocol.bbq import load_predictions
    from eval.bbq import build_report
    from eval.bbq_render import json_text, markdown, terminal

    with reported():
        items, chosen = load_predictions(predictions, fields)
    report = build_report(items, chosen, rounds=rounds, seed=seed)
    if fmt is BBQFormat.table:
        from rich.console import Console

        terminal(report, Console())
        return
    text = json_text(report) if fmt is BBQFormat.json else markdown(report)
    emit(text, out, force=force)


@app.command()
def run(
    data: Path = typer.Option(..., "--data", help="A BBQ .jsonl file, or a folder of them."),
    models: Path | None = typer.Option(
        None, "--models", help="YAML file whose models: answer (default: the embedded model)."
    ),
    db: Path = DB_OPTION,
    run_name: str | None = typer.Option(
        None, "--run", help="Run name (default: from the split, seed and decoding settings)."
    ),
    categories: list[str] | None = typer.Option(
        None, "--categories", help="Only these categories (comma-separated, or repeat)."
    ),
    split: SplitName = typer.Option(
        SplitName.all, "--split", help="dev or train of the template-disjoint split, or all."
    ),
    dev_fraction: float | None = typer.Option(
        None, "--dev-fraction", help="Share of each category's templates in dev (default 0.2)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="At most N items per category (a seeded sample)."
    ),
    samples: int | None = typer.Option(None, "--samples", help="Answers per (model, item)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the split, the sample, option shuffling and sampling."
    ),
    shuffle_options: bool = typer.Option(
        False, "--shuffle-options", help="Show the options in a seeded order per item."
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Max new tokens per answer (default 32; the embedded model 1)."
    ),
    top_logprobs: int | None = typer.Option(
        None, "--top-logprobs", help="Record P(A), P(B), P(C) from the first token's top K."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Calls in flight at once, all models."
    ),
    budget_usd: float | None = typer.Option(
        None, "--budget-usd", help="Ask no new answer once the run has spent this much."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Ask models the BBQ items, recording every answer; rerun to continue.

    Everything is checked before the database is opened: a bad file is one line naming the
    file and line, exit code 2, and nothing is written.
    """
    from arena.bbq_run import run_bbq

    flags = {
        "categories": _names(categories),
        "split": split.value,
        "dev_fraction": dev_fraction,
        "limit": limit,
        "samples": samples,
        "seed": seed,
        "shuffle_options": shuffle_options or None,
        "max_tokens": max_tokens,
        "top_logprobs": top_logprobs,
        "max_concurrency": concurrency,
        "budget_usd": budget_usd,
    }
    with reported():
        code = run_bbq(data, models, db, flags, run_id=run_name, quiet=quiet)
    raise typer.Exit(code)


@app.command()
def report(
    db: Path = DB_OPTION,
    run_name: str | None = typer.Option(
        None, "--run", help="The BBQ run (default: the file's only one)."
    ),
    models: list[str] | None = typer.Option(
        None, "--models", help="Only these models, in this order (comma-separated, or repeat)."
    ),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Output format."),
    rounds: int = typer.Option(
        1000, "--bootstrap", min=0, max=100_000, help="Bootstrap rounds (0: no intervals)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the bootstrap."),
    compare: tuple[str, str] | None = typer.Option(
        None, "--compare", help="BASE NEW: the paired differences NEW - BASE."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the markdown, json or html output to this file."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """A BBQ run's scores per model and category, from the database; works mid-run."""
    check_report_out(out, table=fmt is ReportFormat.table, force=force, db=db)

    from eval.bbq_render import html, json_text, markdown, terminal
    from eval.bbq_store import build_store_report

    with reported():
        scores = build_store_report(
            db,
            run_id=run_name,
            models=_names(models),
            compare=[compare] if compare else [],
            rounds=rounds,
            seed=seed,
        )
    if fmt is ReportFormat.table:
        from rich.console import Console

        terminal(scores, Console())
        return
    renderers = {ReportFormat.json: json_text, ReportFormat.markdown: markdown}
    text = html(scores) if fmt is ReportFormat.html else renderers[fmt](scores)
    emit(text, out, force=force)


@app.command()
def export(
    data: Path = typer.Option(..., "--data", help="A BBQ .jsonl file, or a folder of them."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="A .jsonl or .parquet file, or a folder for a DatasetDict."
    ),
    split: SplitName = typer.Option(
        SplitName.train, "--split", help="train or dev of the template-disjoint split, or all."
    ),
    dev_fraction: float = typer.Option(
        0.2, "--dev-fraction", min=0.0, max=1.0, help="Share of each category's templates in dev."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the split (and of shuffled options)."),
    categories: list[str] | None = typer.Option(
        None, "--categories", help="Only these categories (comma-separated, or repeat)."
    ),
    shuffle_options: bool = typer.Option(
        False, "--shuffle-options", help="Show the options in a seeded order per item."
    ),
    fmt: ExportFormat | None = typer.Option(
        None, "--format", "-f", help="jsonl, parquet or hf (default: from --out's name)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
) -> None:
    """Write the prompt-only GRPO dataset of a split (chat messages under "prompt").

    Use the seed and fraction of the run that evaluates on dev, so that train and dev share no
    template.
    """
    from arena.config.bbq import resolve_bbq_settings
    from arena.core.files import check_output
    from arena.tasks.bbq import select_items
    from pairing.bbq_export import export_rows, format_for, write_export

    with reported():
        kind = format_for(out, fmt.value if fmt else None)
        check_output(out, force=force, directory=kind == "hf")
        settings = resolve_bbq_settings(
            {},
            {
                "categories": _names(categories),
                "split": split.value,
                "dev_fraction": dev_fraction,
                "seed": seed,
            },
        )
        items = select_items(data, settings)
    rows = export_rows(
        items,
        split=split.value,
        seed=seed,
        dev_fraction=dev_fraction,
        shuffle=shuffle_options,
    )

    def stopped(name: str) -> str:
        return f"interrupted by {name}: nothing was written to {out}"

    import errno

    with reported(), interruptible(stopped):
        try:
            write_export(rows, out, kind, split=split.value, force=force)
        except OSError as error:
            code = EXIT_WRITE if error.errno == errno.ENOSPC else 2
            fail(f"{out}: could not write the dataset: {error.strerror or error}", code=code)
    typer.echo(f"wrote {len(rows)} {split.value} prompts to {out}")
