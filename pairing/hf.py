"""Pairs as a `datasets` DatasetDict on disk, which TRL's DPOTrainer reads as it is.

    from datasets import load_from_disk
    from trl import DPOConfig, DPOTrainer

    pairs = load_from_disk("pairs/")          # DatasetDict with "train" and "test"
    DPOTrainer(model, args=DPOConfig(...), train_dataset=pairs["train"],
               eval_dataset=pairs["test"], processing_class=tokenizer)

The rows are those of pairing/pairs.py: `prompt` a list of chat messages, `chosen` and
`rejected` one assistant message each (TRL's conversational preference format), then the metadata
columns. DuckDB writes each split to Parquet in a scratch folder beside the target
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

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from arena.core.errors import UserError
from arena.core.files import atomic_output, scratch_dir
from pairing.pairs import (
    PAIR_COLUMNS,
    Connection,
    PairOptions,
    WrittenPairs,
    copy_pairs,
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


def features(datasets: Any) -> Any:
    """The column types of a pairs dataset, so that every split has them even when empty."""
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    types: dict[str, Any] = {name: datasets.Value("string") for name in PAIR_COLUMNS}
    types.update(
        prompt=datasets.List(message),
        chosen=datasets.List(message),
        rejected=datasets.List(message),
        turn_index=datasets.Value("int32"),
    )
    return datasets.Features({name: types[name] for name in PAIR_COLUMNS})


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
) -> WrittenPairs:
    """Write the pairs of `options` as a DatasetDict (train, test) saved to the folder `target`.

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
                source, selected, parquet, options.context, "parquet", partition_by_split=True
            )
            counts = pair_counts(source, selected, total)
            types = features(datasets)
            splits = {}
            for split in SPLITS:
                files = sorted(str(p) for p in (parquet / f"split={split}").glob("*.parquet"))
                splits[split] = (
                    datasets.Dataset.from_parquet(
                        files, features=types, cache_dir=str(scratch / "cache")
                    )
                    if files
                    else datasets.Dataset.from_dict(
                        {name: [] for name in PAIR_COLUMNS}, features=types
                    )
                )
            # an empty split saved with the default sharding has no shard and does not load
            empty = {split: 1 for split, rows in splits.items() if rows.num_rows == 0}
            datasets.DatasetDict(splits).save_to_disk(str(staged), num_shards=empty)
    finally:
        if progress:
            datasets.enable_progress_bars()
    return WrittenPairs(target, total, counts)
