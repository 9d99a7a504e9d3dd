"""`arena pairs`: turn-level preference pairs (PERSUADE rule) for DPO, or with `--mode sft` the
winners' turns as SFT demonstrations, written as Parquet, JSON Lines or a `datasets` DatasetDict
(`pairing`); a DatasetDict folder also holds `arena-pairs.json`, the export's provenance.

The output appears whole or not at all (`arena.core.files.atomic_output`). An existing `--out` is
refused unless `--force`; the database (any DuckDB file, or its `.wal`) never, whatever `--force`
says. Exit codes: 0 written, 2 a mistake in the input (one line, nothing written), 4 the output
could not be written (a full disk: one line naming the file), 130 stopped by Ctrl-C, SIGTERM,
SIGHUP or SIGQUIT (one line; nothing is left under the output's name or beside it).
"""

from __future__ import annotations

from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, fail, interruptible, reported

PAIRS_FLAGS = {
    "run_id": "--run",
    "chosen_models": "--chosen-model",
    "rejected_models": "--rejected-model",
}
"""`PairOptions` fields whose flag is not `--<field-with-dashes>`, for one-line errors."""


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
    mode: str = typer.Option(
        "dpo",
        "--mode",
        help="dpo: preference pairs; sft: the winning side's turns as demonstrations (messages).",
    ),
    memory_limit: str = typer.Option(
        "1GB", "--memory-limit", help="DuckDB's memory limit; it spills to disk beyond it."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing --out (never the database or a DuckDB file)."
    ),
) -> None:
    """Turn-level preference pairs (PERSUADE rule) for DPO, or SFT demonstrations (--mode sft),
    in TRL's conversational formats."""
    from pydantic import ValidationError

    from arena.config.errors import flag_problem
    from pairing import PairOptions
    from pairing.export import export_pairs, format_for, summary_table

    topics = [t.strip() for item in test_topics or [] for t in item.split(",") if t.strip()]
    if topics and test_fraction is not None:
        fail("give either --test-topics or --test-fraction, not both")
    if mode == "sft" and rejected_model:
        fail("--rejected-model: demonstrations (--mode sft) have no rejected turn")
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
            mode=mode,  # likewise
        )
    except ValidationError as error:
        flag, problem = flag_problem(error, PAIRS_FLAGS)
        fail(f"{flag}: {problem}" if flag else problem)

    def stopped(name: str) -> str:
        return f"interrupted by {name}: nothing was written to {out}, and no scratch is left"

    with reported(), interruptible(stopped):
        written = export_pairs(db, out, options, format_for(out, fmt), memory_limit, force=force)
    noun = "demonstrations" if written.mode == "sft" else "pairs"
    typer.echo(f"wrote {written.total} {noun} to {out}")
    if written.total:
        from rich.console import Console

        Console().print(summary_table(written))
