"""`write_pairs`: the pairs of some options, written as Parquet, JSON Lines or a DatasetDict.

The rows come from pairing/pairs.py (the PERSUADE rule as DuckDB queries, streamed out by COPY);
a DatasetDict for TRL is built by pairing/hf.py. Outputs appear whole or not at all: a file is
written under a hidden temporary name beside its target and renamed over it once complete, so a
reader never sees half a file and a failed write leaves an earlier output in place.

This module is the one that knows every format, so that pairs.py needs nothing of hf.py and hf.py
only builds on pairs.py (no import cycle).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import get_args

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


def staging_path(target: Path) -> Path:
    """A hidden name beside `target` that ends like it (so that DuckDB infers the same
    compression from `.gz` or `.zst`), unique to this write.

    >>> staging_path(Path("out/pairs.jsonl.gz")).name.endswith("-pairs.jsonl.gz")
    True
    """
    return target.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{target.name}")


def write_pairs(
    source: Connection,
    path: str | os.PathLike[str],
    options: PairOptions | None = None,
    format: PairFormat = "parquet",
) -> WrittenPairs:
    """Write the pairs of `options` to `path`: Parquet, JSON Lines, or a `datasets` DatasetDict.

    `prompt`, `chosen` and `rejected` are lists of {role, content} messages, TRL's conversational
    preference format. Parquet and JSON Lines are written by DuckDB's COPY, rows in no particular
    order; `hf` is a DatasetDict with `train` and `test` splits saved to the folder `path`
    (`datasets.load_from_disk`), which needs the `train` extra (pairing/hf.py).
    """
    if format not in get_args(PairFormat):
        raise ValueError(f"unknown format {format!r}: use 'parquet', 'jsonl' or 'hf'")
    options = options or PairOptions()
    target = Path(path)
    if format == "hf":
        return write_dataset_dict(source, target, options)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = staging_path(target)
    try:
        with selected_pairs(source, options) as selected:
            total = copy_pairs(source, selected, staged, options.context, format)
            counts = pair_counts(source, selected, total)
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return WrittenPairs(target, total, counts)
