"""`write_pairs`: the pairs of some options, written as Parquet, JSON Lines or a DatasetDict.

The rows come from pairing/pairs.py (the PERSUADE rule as DuckDB queries, streamed out by COPY);
a DatasetDict for TRL is built by pairing/hf.py. Every output goes through
`arena.core.files.atomic_output`: it is written under a hidden temporary name beside its target
(`.arena-tmp-<pid>-...`) and renamed into place once complete, so a reader never sees half a
file, and a failed or interrupted write leaves the target as it was. The database being read
(and any DuckDB file, and its `.wal`) is never a valid target; an existing target is replaced
only with `force`.

A full disk (or memory running out) while writing is a `storage.WriteError` naming the target,
not the DuckDB or Arrow error it surfaced as, so that a command reports it as a failed write.

This module is the one that knows every format, so that pairs.py needs nothing of hf.py and hf.py
only builds on pairs.py (no import cycle).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

import duckdb

from arena.core.errors import UserError
from arena.core.files import SCRATCH_PREFIX, TMP_PREFIX, atomic_output
from pairing.hf import write_dataset_dict
from pairing.pairs import (
    Connection,
    PairFormat,
    PairOptions,
    WrittenPairs,
    copy_pairs,
    pair_counts,
    selected_pairs,
)
from storage import Store
from storage.errors import DISK_FULL, OUT_OF_MEMORY, WriteError, failure_reason, write_error


def database_files(source: Connection) -> list[Path]:
    """The files of the databases `source` has attached (never to be written over)."""
    if isinstance(source, Store):
        return [source.path]
    rows = source.execute("SELECT path FROM duckdb_databases() WHERE path IS NOT NULL").fetchall()
    return [Path(str(row[0])) for row in rows if row[0]]


def _resource_failure(error: BaseException) -> BaseException | None:
    """`error`, or the error it was raised from, that says the disk is full or memory ran out
    (`datasets` wraps Arrow's OSError in an error of its own); None if none does."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if failure_reason(current) in (DISK_FULL, OUT_OF_MEMORY):
            return current
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def output_failures(target: Path, what: str = "writing pairs") -> Iterator[None]:
    """Turn a full disk or memory running out inside the block into a `WriteError` on `target`.

    DuckDB reports them as IO or out-of-memory errors, pyarrow and `datasets` as OSError (or
    their own errors raised from one), a running tournament's snapshot as a StoreError that
    quotes DuckDB's. Any other failure to write one of our temporaries or scratch files (a
    read-only folder, say: DuckDB and Arrow name the file) is a `WriteError` too; anything else
    passes unchanged (a damaged database fails to be read, and the caller says so).
    """
    try:
        yield
    except (UserError, WriteError):
        raise
    except Exception as error:
        cause = _resource_failure(error)
        if cause is None and isinstance(error, (OSError, duckdb.IOException)):
            ours = (TMP_PREFIX, SCRATCH_PREFIX)
            cause = error if any(prefix in str(error) for prefix in ours) else None
        if cause is None:
            raise
        raise write_error(cause, str(target), what) from error


def write_pairs(
    source: Connection,
    path: str | os.PathLike[str],
    options: PairOptions | None = None,
    format: PairFormat = "parquet",
    *,
    force: bool = True,
    protected: Iterable[str | os.PathLike[str]] = (),
    database: str | os.PathLike[str] | None = None,
) -> WrittenPairs:
    """Write the pairs of `options` to `path`: Parquet, JSON Lines, or a `datasets` DatasetDict
    (with `options.mode="sft"`, the demonstrations instead: `messages` rows).

    `prompt`, `chosen` and `rejected` are lists of {role, content} messages, TRL's conversational
    preference format. Parquet and JSON Lines are written by DuckDB's COPY, rows in no particular
    order; `hf` is a DatasetDict with `train` and `test` splits saved to the folder `path`
    (`datasets.load_from_disk`), which needs the `train` extra (pairing/hf.py), with its
    `arena-pairs.json` (`database`: the database it names, by default the file `source` reads;
    Parquet and JSON Lines files carry no such record).

    `force` (the default for this library call, as for most writers of files): replace an
    earlier output at `path` (for `hf`, only an earlier DatasetDict); `arena pairs` passes its
    `--force` flag, off by default. The files of `source`'s databases and `protected` are never
    written, nor any DuckDB file (`arena.core.files.OutputRefused`, a UserError). A full disk
    raises `storage.WriteError` naming `path`; the target is then as it was.
    """
    if format not in get_args(PairFormat):
        raise ValueError(f"unknown format {format!r}: use 'parquet', 'jsonl' or 'hf'")
    options = options or PairOptions()
    target = Path(path)
    sources = database_files(source)
    guarded = [*protected, *sources]
    if database is None and sources:
        database = sources[0]
    with output_failures(target):
        if format == "hf":
            named = str(Path(database).resolve()) if database is not None else None
            return write_dataset_dict(
                source, target, options, force=force, protected=guarded, database=named
            )
        with (
            atomic_output(target, force=force, protected=guarded) as staged,
            selected_pairs(source, options) as selected,
        ):
            total = copy_pairs(source, selected, staged, options, format)
            counts = pair_counts(source, selected, total)
    return WrittenPairs(target, total, counts, options.mode)
