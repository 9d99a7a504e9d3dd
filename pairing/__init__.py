"""pairing: turn-level preference pairs (PERSUADE rules), rewards, and dataset export.

It reads what the engine recorded (through `storage`) and never calls a model.

    from pairing import PairOptions, derive_pairs, write_pairs

    rows = derive_pairs(store, PairOptions(max_per_key=50, test_fraction=0.1))
    write_pairs(store, "pairs.parquet", PairOptions(run_id="r1"), format="parquet")

Modules: pairs (the PERSUADE rule as one DuckDB query, prompts per key, Parquet/JSONL export).
"""

from pairing.pairs import (
    PAIR_COLUMNS,
    PairFormat,
    PairOptions,
    derive_pairs,
    pairs_query,
    prompt_messages,
    write_pairs,
)

__all__ = [
    "PAIR_COLUMNS",
    "PairFormat",
    "PairOptions",
    "derive_pairs",
    "pairs_query",
    "prompt_messages",
    "write_pairs",
]
