"""`arena pcp build-train` and `arena pcp overlap`: the Political Consistency Training prompts.

- `arena pcp build-train --topics FILE --pairs FILE --out FILE [--models models.yaml
  --generator NAME]`: a generator model keeps the topics with a clear left/right dimension and
  writes, for each, a left-leaning and a right-leaning neutral-looking answer to "Tell me about
  <topic>" and four "Tell me how good/bad ..." requests (`arena.pcp_train_run`,
  `arena.tasks.pcp_train`), recorded in the database; the same command continues an interrupted
  run, and once it is complete writes `--out` in the published set's row format. The topics of
  the `--pairs` evaluation set are left out (`--allow-eval-topics` keeps them, and then
  `--pairs` is not needed).
- `arena pcp overlap --train FILE --pairs FILE`: which evaluation topics appear in a training
  file's queries (`arena.protocol.pcp_train.overlap` states the rule), as a table or JSON;
  `--check` exits with 1 when any does.

These are plain functions; `arena.cli.pcp` registers them in the `arena pcp` group. A mistake in
the input (a missing or empty topics file, a pairs file of the wrong shape, a training file with
a bad row) is one `error:` line naming the file (and row and field), exit code 2, and nothing is
written.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, reported


class OverlapFormat(StrEnum):
    table = "table"
    json = "json"


def build_train(
    topics: Path = typer.Option(
        ..., "--topics", help="Topic names, one a line (e.g. controversial_topics.txt)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The training-prompt JSON file to write."),
    pairs: Path | None = typer.Option(
        None,
        "--pairs",
        help="The evaluation topic pairs (pcp_topics.json) whose topics are left out.",
    ),
    allow_eval_topics: bool = typer.Option(
        False, "--allow-eval-topics", help="Keep topics that appear in the evaluation pairs."
    ),
    models: Path | None = typer.Option(
        None, "--models", help="YAML file whose models: include the generator (default: embedded)."
    ),
    generator: str | None = typer.Option(
        None, "--generator", help="The model that classifies and writes (default: the only one)."
    ),
    anchor_generator: str | None = typer.Option(
        None, "--anchor-generator", help="Another model to write the anchors (default: the same)."
    ),
    db: Path = DB_OPTION,
    run_name: str | None = typer.Option(
        None, "--run", help="Run name (default: from the generators and decoding settings)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="Only the first N topics (after the evaluation topics are left out)."
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Max new tokens of an anchor (default 1024)."
    ),
    json_max_tokens: int | None = typer.Option(
        None, "--json-max-tokens", help="Max new tokens of a JSON reply (default 512)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed of every call."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Calls in flight at once, both generators."
    ),
    budget_usd: float | None = typer.Option(
        None, "--budget-usd", help="Start no new topic once the run has spent this much."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Generate the PCT training prompts from a topic list; rerun to continue.

    Everything is checked before the database is opened: a bad file is one line naming it,
    exit code 2, and nothing is written. --out is written once every topic is done.
    """
    from arena.pcp_train_run import build_train as run_build

    flags = {
        "limit": limit,
        "max_tokens": max_tokens,
        "json_max_tokens": json_max_tokens,
        "seed": seed,
        "max_concurrency": concurrency,
        "budget_usd": budget_usd,
    }
    with reported():
        code = run_build(
            topics,
            out,
            db,
            flags,
            pairs_path=pairs,
            allow_eval_topics=allow_eval_topics,
            models=models,
            generator=generator,
            anchor_generator=anchor_generator,
            run_id=run_name,
            force=force,
            quiet=quiet,
        )
    raise typer.Exit(code)


def overlap(
    train: Path = typer.Option(..., "--train", help="A training-prompt JSON file."),
    pairs: Path = typer.Option(..., "--pairs", help="The evaluation topic pairs (a JSON file)."),
    fmt: OverlapFormat = typer.Option(OverlapFormat.table, "--format", "-f", help="Output format."),
    check: bool = typer.Option(False, "--check", help="Exit with 1 when any topic overlaps."),
) -> None:
    """Which evaluation topics appear in a training file's queries.

    A topic appears in a row when its name (case, punctuation and a leading "The" or a trailing
    parenthetical aside) is a whole-word phrase of the row's query.
    """
    from arena.protocol.pcp import load_topic_pairs
    from arena.protocol.pcp_train import by_topic, load_train_rows
    from arena.protocol.pcp_train import overlap as find_overlap

    with reported():
        rows = load_train_rows(train)
        topic_pairs = load_topic_pairs(pairs)
    hits = find_overlap(rows, topic_pairs)
    topics = by_topic(hits)
    overlapping_rows = sorted({h.row for h in hits})
    eval_count = 2 * len(topic_pairs)
    if fmt is OverlapFormat.json:
        report = {
            "train": str(train),
            "pairs": str(pairs),
            "rows": len(rows),
            "eval_topics": eval_count,
            "overlapping_topics": len(topics),
            "overlapping_rows": len(overlapping_rows),
            "overlapping_sentiment_rows": sum(
                rows[i].query_type == "sentiment" for i in overlapping_rows
            ),
            "topics": [{**asdict(t), "rows": list(t.rows)} for t in topics],
        }
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        if topics:
            table = Table()
            table.add_column("topic", min_width=12)
            for name in ("side", "pair", "sentiment", "helpfulness"):
                table.add_column(name, no_wrap=True, min_width=len(name))
            table.add_column("first query", overflow="fold")
            for t in topics:
                table.add_row(
                    t.topic, t.side, str(t.pair), str(t.sentiment), str(t.helpfulness), t.example
                )
            console.print(table)
        console.print(
            f"{len(topics)} of {eval_count} evaluation topics appear in {len(overlapping_rows)} "
            f"of {len(rows)} training rows",
            highlight=False,
        )
    if check and topics:
        raise typer.Exit(1)
