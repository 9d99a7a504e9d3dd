"""Pairs as a `datasets` DatasetDict on disk, which TRL's DPOTrainer reads as it is.

    from datasets import load_from_disk
    from trl import DPOConfig, DPOTrainer

    pairs = load_from_disk("pairs/")          # DatasetDict with "train" and "test"
    DPOTrainer(model, args=DPOConfig(...), train_dataset=pairs["train"],
               eval_dataset=pairs["test"], processing_class=tokenizer)

The rows are those of pairing/pairs.py: `prompt` a list of chat messages, `chosen` and
`rejected` one assistant message each (TRL's conversational preference format), then the metadata
columns; or, for demonstrations (`mode="sft"`), `messages` (the prompt's messages and the winning
turn as the assistant's: TRL's conversational language modeling format) and theirs. The folder
also holds `arena-pairs.json`: the database, run, mode, options, counts, time and arena version of
the export (`pairing.pairs.export_record`), written inside the folder before it is renamed into
place, so it is there exactly when the dataset is.

DuckDB writes each split to Parquet in a scratch folder beside the target
(`.arena-pairs-<pid>-...`, with `datasets`' cache); `datasets` converts them to Arrow (without
touching the Hugging Face Hub) and `save_to_disk` writes the DatasetDict under a hidden temporary
name beside the target, which `arena.core.files.atomic_output` renames into place once complete
(an earlier output, replaced only with `force`, renamed out of the way first, then removed), so
the target is never half written. A split with no pairs is an empty dataset with the same
columns. `pairing.write_pairs(..., format="hf")` (pairing/writers.py) calls
this; this module builds on pairs.py only.

`datasets` is optional (the `train` extra) and imported only here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from arena.core.errors import UserError
from arena.core.files import atomic_output, scratch_dir
from pairing.pairs import (
    EXPORT_RECORD,
    Connection,
    PairMode,
    PairOptions,
    WrittenPairs,
    columns_for,
    copy_pairs,
    export_record,
    pair_counts,
    selected_pairs,
)

SPLITS = ("train", "test")
INSTALL_HINT = "pip install 'debate-arena[train]'"


def import_datasets() -> Any:
    """The `datasets` module, or a UserError that says which extra to install."""
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"--format hf needs the datasets package, which is not installed: {INSTALL_HINT}"
        ) from None
    return datasets


def features(datasets: Any, mode: PairMode = "dpo") -> Any:
    """The column types of a pairs (or demonstrations) dataset, so that every split has them
    even when empty."""
    columns = columns_for(mode)
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    types: dict[str, Any] = {name: datasets.Value("string") for name in columns}
    chats = ("messages",) if mode == "sft" else ("prompt", "chosen", "rejected")
    types.update({name: datasets.List(message) for name in chats})
    types["turn_index"] = datasets.Value("int32")
    return datasets.Features({name: types[name] for name in columns})


def check_target(target: Path) -> None:
    """Refuse to replace anything but an earlier DatasetDict (a folder with dataset_dict.json)
    or an empty folder, even with `force`: a folder of other files is not ours to remove."""
    if target.is_file() or (
        target.is_dir() and any(target.iterdir()) and not (target / "dataset_dict.json").is_file()
    ):
        raise UserError(
            f"{target} exists and is not a dataset written by arena pairs; "
            "give --out a new folder (or an earlier --format hf output, with --force)"
        )


def write_dataset_dict(
    source: Connection,
    target: Path,
    options: PairOptions,
    *,
    force: bool = True,
    protected: Iterable[str | os.PathLike[str]] = (),
    database: str | None = None,
) -> WrittenPairs:
    """Write the pairs of `options` as a DatasetDict (train, test) saved to the folder `target`,
    with `arena-pairs.json` (`pairing.pairs.export_record`: `database` is what it names as the
    source) inside it.

    `force`: replace an earlier DatasetDict there; `protected`: paths never to write or remove
    (the database). See `arena.core.files.atomic_output`.
    """
    datasets = import_datasets()
    check_target(target)
    progress = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with (
            atomic_output(target, force=force, protected=protected, directory=True) as staged,
            scratch_dir(target.parent) as scratch,
            selected_pairs(source, options) as selected,
        ):
            parquet = scratch / "parquet"
            total = copy_pairs(
                source, selected, parquet, options, "parquet", partition_by_split=True
            )
            counts = pair_counts(source, selected, total)
            types = features(datasets, options.mode)
            columns = columns_for(options.mode)
            splits = {}
            for split in SPLITS:
                files = sorted(str(p) for p in (parquet / f"split={split}").glob("*.parquet"))
                splits[split] = (
                    datasets.Dataset.from_parquet(
                        files, features=types, cache_dir=str(scratch / "cache")
                    )
                    if files
                    else datasets.Dataset.from_dict({name: [] for name in columns}, features=types)
                )
            # an empty split saved with the default sharding has no shard and does not load
            empty = {split: 1 for split, rows in splits.items() if rows.num_rows == 0}
            datasets.DatasetDict(splits).save_to_disk(str(staged), num_shards=empty)
            written = WrittenPairs(target, total, counts, options.mode)
            record = export_record(options, written, database, "hf")
            (staged / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    finally:
        if progress:
            datasets.enable_progress_bars()
    return written
