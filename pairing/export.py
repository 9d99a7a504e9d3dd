"""What `arena pairs` does: checks, a read-only connection set up to stream, the file, a summary.

The connection comes from `storage.read_connection`: the database file itself when no tournament
holds it, else a consistent snapshot of the tables the pair queries read, which the running
tournament copies for us (storage/snapshot.py), so `arena pairs` works mid-run and its pairs are
those of one moment. Everything a user can get wrong is checked before anything is written: the
database, the names in the filters (a typo would otherwise give an empty or wrongly split
dataset), the output path, and for `--format hf` the `datasets` package. DuckDB gets a memory
limit (1 GB unless told otherwise) and a scratch folder beside the output to spill to, so the
full cross product of a large arena is written in bounded memory; the scratch folder is removed
afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import cast, get_args

import duckdb
from rich.table import Table

from arena.core.errors import UserError
from pairing.pairs import PAIR_TABLES, PairFormat, PairOptions, WrittenPairs, check_names
from pairing.writers import write_pairs
from storage import read_connection

DEFAULT_MEMORY_LIMIT = "1GB"
SUMMARY_MODELS = 12
"""Chosen models listed in the summary; the rest are counted in one line."""


def format_for(out: Path, given: str | None) -> PairFormat:
    """The format asked for, else the one the file name implies (JSON Lines for .jsonl)."""
    for known in get_args(PairFormat):
        if given == known:
            return cast(PairFormat, known)
    if given is not None:
        raise UserError(f"--format: unknown format {given!r} (parquet, jsonl or hf)")
    return "jsonl" if out.suffix == ".jsonl" else "parquet"


def export_pairs(
    db: Path,
    out: Path,
    options: PairOptions,
    format: PairFormat,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> WrittenPairs:
    """Write the pairs of `options` from the database `db` to `out`, also while a tournament
    writes to it; UserError for bad input, StoreError when the database cannot be read."""
    if not db.is_file():
        raise UserError(f"no database at {db}")
    if format == "hf":
        from pairing.hf import check_target, import_datasets

        import_datasets()
        check_target(out)
    elif out.is_dir():
        raise UserError(f"{out} is a folder; give a file name for --format {format}")
    with read_connection(db, tables=PAIR_TABLES) as con:
        con.execute("SET enable_progress_bar = false")  # stdout is for our own lines
        try:
            check_names(con, options)
        except duckdb.CatalogException:
            raise UserError(f"{db} is not a debate-arena database") from None
        try:
            con.execute(f"SET memory_limit = '{memory_limit.replace(chr(39), '')}'")
        except duckdb.Error:
            raise UserError(
                f"--memory-limit: {memory_limit!r} is not a memory size (say 1GB or 512MB)"
            ) from None
        out.parent.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=".arena-pairs-", dir=out.parent)
        try:
            con.execute(f"SET temp_directory = '{scratch.replace(chr(39), chr(39) * 2)}'")
            return write_pairs(con, out, options, format=format)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def summary_table(written: WrittenPairs) -> Table:
    """Pairs per split, per chosen model and per turn, one compact table."""
    splits = [s for s in ("train", "test") if s in written.by("split")] or ["train"]
    table = Table("", *splits, "total", title=f"{written.total:,} pairs", title_justify="left")
    for column in table.columns[1:]:
        column.justify = "right"

    def add(label: str, index: int, value: object) -> None:
        per_split = {s: 0 for s in splits}
        for row in written.counts:
            if value is None or row[index] == value:
                per_split[row[0]] = per_split.get(row[0], 0) + row[3]
        cells = [f"{per_split[s]:,}" for s in splits]
        table.add_row(label, *cells, f"{sum(per_split.values()):,}")

    add("all", 0, None)
    table.add_section()
    models = sorted(written.by("chosen_model").items(), key=lambda item: (-item[1], item[0]))
    for model, _ in models[:SUMMARY_MODELS]:
        add(f"chosen {model}", 1, model)
    if len(models) > SUMMARY_MODELS:
        rest = sum(n for _, n in models[SUMMARY_MODELS:])
        table.add_row(
            f"{len(models) - SUMMARY_MODELS} more models", *[""] * len(splits), f"{rest:,}"
        )
    table.add_section()
    for turn in written.by("turn_index"):
        add(f"turn {turn}", 2, turn)
    return table
