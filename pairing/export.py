"""What `arena pairs` does: checks, a read-only connection set up to stream, the file, a summary.

The connection comes from `storage.read_connection`: the database file itself when no tournament
holds it, else a consistent snapshot of the tables the pair queries read, which the running
tournament copies for us (storage/snapshot.py), so `arena pairs` works mid-run and its pairs are
those of one moment. Everything a user can get wrong is checked before anything is written: the
database, the names in the filters (a typo would otherwise give an empty or wrongly split
dataset), the output path (taken without `force`, or the database itself: never, whatever
`force` says; `arena.core.files.check_output`), and for `--format hf` the `datasets` package.
DuckDB gets a memory limit (1 GB unless told otherwise) and a scratch folder beside the output to
spill to (`.arena-pairs-<pid>-...`), so the full cross product of a large arena is written in
bounded memory; the scratch folder is removed afterwards, and scratch that killed runs left
beside the output and the database (`.arena-tmp-*`, `.arena-pairs-*`, `.arena-snapshot-*` of a
dead pid) is removed first.

A damaged database (a truncated file, random bytes) is a StoreError naming it; a full disk is a
`storage.WriteError` naming the file that could not be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast, get_args

import duckdb
from rich.table import Table

from arena.core.errors import UserError
from arena.core.files import (
    check_output,
    refuse_never_written,
    remove_stale_scratch,
    scratch_dir,
)
from pairing.pairs import PAIR_TABLES, PairFormat, PairOptions, WrittenPairs, check_names
from pairing.writers import output_failures, write_pairs
from storage import StoreError, read_connection
from storage.errors import first_line

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
    *,
    force: bool = False,
) -> WrittenPairs:
    """Write the pairs of `options` from the database `db` to `out`, also while a tournament
    writes to it; UserError for bad input (an existing `out` without `force`; `out` the database
    or any DuckDB file, always), StoreError when the database cannot be read, WriteError when
    the output cannot be written (a full disk)."""
    if not db.is_file():
        raise UserError(f"no database at {db}")
    is_folder = format == "hf"
    refuse_never_written(out, protected=[db], directory=is_folder)
    if is_folder:
        from pairing.hf import check_target, import_datasets

        import_datasets()
        check_target(out)
    check_output(out, force=force, protected=[db], directory=is_folder)
    for place in {out.parent, db.parent}:  # what runs killed by SIGKILL left
        remove_stale_scratch(place)
    with (
        output_failures(db.parent, "a snapshot of the database"),
        read_connection(db, tables=PAIR_TABLES) as con,
    ):
        con.execute("SET enable_progress_bar = false")  # stdout is for our own lines
        try:
            check_names(con, options)
        except duckdb.CatalogException:
            raise UserError(f"{db} is not a debate-arena database") from None
        except duckdb.Error as error:  # a damaged file can open and then fail to read
            raise StoreError(f"cannot read {db}: {first_line(str(error))}") from None
        try:
            con.execute(f"SET memory_limit = '{memory_limit.replace(chr(39), '')}'")
        except duckdb.Error:
            raise UserError(
                f"--memory-limit: {memory_limit!r} is not a memory size (say 1GB or 512MB)"
            ) from None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot create the folder {out.parent}: {error.strerror}") from None
        with scratch_dir(out.parent) as scratch:
            con.execute(f"SET temp_directory = '{str(scratch).replace(chr(39), chr(39) * 2)}'")
            try:
                return write_pairs(
                    con, out, options, format=format, force=force, protected=[db], database=db
                )
            except duckdb.IOException as error:  # reading a damaged file (writing: WriteError)
                raise StoreError(f"cannot read {db}: {first_line(str(error))}") from None


def summary_table(written: WrittenPairs) -> Table:
    """Pairs (or demonstrations) per split, per chosen model and per turn, one compact table."""
    splits = [s for s in ("train", "test") if s in written.by("split")] or ["train"]
    noun, role = ("demonstrations", "model") if written.mode == "sft" else ("pairs", "chosen")
    table = Table("", *splits, "total", title=f"{written.total:,} {noun}", title_justify="left")
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
        add(f"{role} {model}", 1, model)
    if len(models) > SUMMARY_MODELS:
        rest = sum(n for _, n in models[SUMMARY_MODELS:])
        table.add_row(
            f"{len(models) - SUMMARY_MODELS} more models", *[""] * len(splits), f"{rest:,}"
        )
    table.add_section()
    for turn in written.by("turn_index"):
        add(f"turn {turn}", 2, turn)
    return table
