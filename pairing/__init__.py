"""pairing: turn-level preference pairs (PERSUADE rules), rewards, and dataset export.

It reads what the engine recorded (through `storage`) and never calls a model.

    from pairing import PairOptions, derive_pairs, write_pairs

    rows = derive_pairs(store, PairOptions(max_per_key=50, test_fraction=0.1))
    write_pairs(store, "pairs.parquet", PairOptions(run_id="r1"), format="parquet")
    write_pairs(store, "pairs/", PairOptions(chosen_models=["m"]), format="hf")  # DatasetDict

Modules: pairs (the PERSUADE rule as set-based DuckDB queries, streamed out by COPY), prompts
(each pair's prompt, with or without the chosen debate's transcript), hf (a `datasets`
DatasetDict for TRL, the `train` extra), writers (`write_pairs`: every format, written
atomically), export (what `arena pairs` does, also while a tournament writes to the file),
rewards (TRL reward functions: `bbq_reward`), bbq_export (BBQ prompts for GRPO, `arena bbq
export`).
"""

from pairing.pairs import (
    PAIR_COLUMNS,
    Context,
    PairFormat,
    PairOptions,
    WrittenPairs,
    candidates_query,
    check_names,
    derive_pairs,
)
from pairing.prompts import prompt_messages
from pairing.rewards import bbq_reward
from pairing.writers import write_pairs

__all__ = [
    "PAIR_COLUMNS",
    "Context",
    "PairFormat",
    "PairOptions",
    "WrittenPairs",
    "bbq_reward",
    "candidates_query",
    "check_names",
    "derive_pairs",
    "prompt_messages",
    "write_pairs",
]
