"""BBQ items as a prompt-only training dataset for TRL's GRPO trainer (`arena bbq export`).

One row per item, in TRL's conversational prompt-only format, with the columns
`pairing.rewards.bbq_reward` reads:

    {"prompt": [{"role": "user", "content": "Here is a short passage, ..."}],
     "gold_letter": "C", "biased_letter": "A", "unknown_letter": "C",
     "options": ["The grandfather", "The grandson", "Can't be determined"],
     "item_id": "Age:0", "category": "Age", "question_index": "1", "example_id": 0,
     "context_condition": "ambig", "question_polarity": "neg",
     "split": "train", "split_seed": 0, "dev_fraction": 0.2}

The prompt is `arena.protocol.bbq.present`'s, the same a run asks, so a model trained on the train
split is evaluated on the dev split (`arena bbq run --split dev`, same seed and fraction) with the
very prompt it learnt from, on templates it never saw. `options` lets the reward read a reply that
names an option by its text; `biased_letter` is null for an item without a target.

Formats: JSON Lines (`.jsonl`), Parquet (`.parquet`, written by DuckDB), or a `datasets`
DatasetDict saved to a folder (`load_from_disk(out)[split]`, the `train` extra). Every output
appears whole or not at all (`arena.core.files.atomic_output`); an existing one is replaced only
with `force`, a DuckDB file never.

Simplified on purpose: the rows are built in memory (BBQ's 58,492 items are about 60 MB of
prompts), and Parquet goes through a scratch JSON Lines file that DuckDB converts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from arena.core.errors import UserError
from arena.core.files import atomic_output, scratch_dir
from arena.protocol.bbq import BBQItem, item_id, present

ExportFormat = Literal["jsonl", "parquet", "hf"]

COLUMNS: tuple[str, ...] = (
    "prompt",
    "gold_letter",
    "biased_letter",
    "unknown_letter",
    "options",
    "item_id",
    "category",
    "question_index",
    "example_id",
    "context_condition",
    "question_polarity",
    "split",
    "split_seed",
    "dev_fraction",
)
"""The dataset's columns, in order."""

_DUCKDB_TYPES = {
    "prompt": "STRUCT(role VARCHAR, content VARCHAR)[]",
    "options": "VARCHAR[]",
    "example_id": "INTEGER",
    "split_seed": "BIGINT",
    "dev_fraction": "DOUBLE",
}


def export_rows(
    items: Sequence[BBQItem],
    *,
    split: str,
    seed: int,
    dev_fraction: float | None,
    shuffle: bool = False,
) -> list[dict[str, Any]]:
    """One dataset row per item (module docstring); `seed` also orders shuffled options."""
    rows: list[dict[str, Any]] = []
    for item in items:
        shown = present(item, shuffle=shuffle, seed=seed)
        rows.append(
            {
                "prompt": [m.as_dict() for m in shown.messages()],
                **shown.columns(),
                "options": list(shown.options),
                "item_id": item_id(item),
                "category": item.category,
                "question_index": item.question_index,
                "example_id": item.example_id,
                "context_condition": item.context_condition,
                "question_polarity": item.question_polarity,
                "split": split,
                "split_seed": None if split == "all" else seed,
                "dev_fraction": None if split == "all" else dev_fraction,
            }
        )
    return [{c: row[c] for c in COLUMNS} for row in rows]


def format_for(out: Path, fmt: str | None) -> ExportFormat:
    """The format asked for, or the one `out`'s name implies: `.jsonl`, `.parquet`, or a folder
    (a name without a suffix) for a DatasetDict."""
    if fmt is not None:
        if fmt not in ("jsonl", "parquet", "hf"):
            raise UserError(f"--format: expected jsonl, parquet or hf, not {fmt!r}")
        return fmt  # type: ignore[return-value]
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    if not suffix or out.is_dir():
        return "hf"
    raise UserError(
        f"--out: {out} ends in {suffix}; give a .jsonl or .parquet file, a folder for a "
        "datasets DatasetDict, or --format"
    )


def _write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_parquet(rows: Sequence[dict[str, Any]], path: Path, scratch: Path) -> None:
    import duckdb

    source = scratch / "rows.jsonl"
    _write_jsonl(rows, source)
    columns = ", ".join(f"'{c}': '{_DUCKDB_TYPES.get(c, 'VARCHAR')}'" for c in COLUMNS)
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_json(?, format = 'newline_delimited', "
            f"columns = {{{columns}}})) TO '{_quoted(path)}' (FORMAT parquet, COMPRESSION zstd)",
            [str(source)],
        )


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _write_hf(rows: Sequence[dict[str, Any]], path: Path, split: str) -> None:
    try:
        import datasets
    except ImportError:
        raise UserError(
            "a datasets folder needs the datasets package, which is not installed: "
            "pip install 'debate-arena[train]' (or give a .jsonl or .parquet --out)"
        ) from None
    string = datasets.Value("string")
    features = datasets.Features(
        {
            "prompt": datasets.List({"role": string, "content": string}),
            "gold_letter": string,
            "biased_letter": string,
            "unknown_letter": string,
            "options": datasets.List(string),
            "item_id": string,
            "category": string,
            "question_index": string,
            "example_id": datasets.Value("int64"),
            "context_condition": string,
            "question_polarity": string,
            "split": string,
            "split_seed": datasets.Value("int64"),
            "dev_fraction": datasets.Value("float64"),
        }
    )
    progress = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        data = datasets.Dataset.from_list(list(rows), features=features)
        datasets.DatasetDict({split: data}).save_to_disk(str(path))
    finally:
        if progress:
            datasets.enable_progress_bars()


def write_export(
    rows: Sequence[dict[str, Any]],
    out: str | os.PathLike[str],
    fmt: ExportFormat,
    *,
    split: str,
    force: bool = False,
) -> Path:
    """Write `rows` to `out` in `fmt`, whole or not at all; the path written."""
    target = Path(out).expanduser()
    if fmt == "hf":
        if (
            target.is_dir()
            and any(target.iterdir())
            and not (target / "dataset_dict.json").is_file()
        ):
            raise UserError(
                f"{target} exists and is not a datasets folder; give --out a new folder "
                "(or an earlier export, with --force)"
            )
        with atomic_output(target, force=force, directory=True) as staged:
            _write_hf(rows, staged, split)
        return target
    with atomic_output(target, force=force) as staged:
        if fmt == "jsonl":
            _write_jsonl(rows, staged)
        else:
            with scratch_dir(target.parent) as scratch:
                _write_parquet(rows, staged, scratch)
    return target
