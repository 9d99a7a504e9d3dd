"""Training data cut short, shared by the training tests (tests/test_train_*.py, the vLLM CPU
test and the closed-loop test).

The sim debaters' system prompt alone is 230 tokens; cut to a system line, a user line and the
first 12 words of each reply, a DPO or SFT step on the embedded model takes about a second on two
cores. The cut dataset keeps every other column (the debate ids the provenance reads) and the
export's `arena-pairs.json`, so it is still what `arena pairs` wrote, shorter.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

WORDS = 12


def _words(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    text = " ".join(messages[-1]["content"].split()[:WORDS])
    return [{"role": "assistant", "content": text}]


def _task(row: dict[str, Any]) -> list[dict[str, str]]:
    task = f"Turn {row['turn_index']}: argue {row['side']} on {row['topic_id']}."
    return [{"role": "system", "content": "You debate."}, {"role": "user", "content": task}]


def short_pairs(source: Path, target: Path) -> None:
    """The pairs (`arena pairs --format hf`) in `source`, cut short, saved to `target`."""
    _cut(source, target, "dpo")


def short_demonstrations(source: Path, target: Path) -> None:
    """The demonstrations (`arena pairs --mode sft --format hf`) in `source`, cut short."""
    _cut(source, target, "sft")


def _cut(source: Path, target: Path, mode: str) -> None:
    import datasets

    from pairing.hf import features
    from pairing.pairs import EXPORT_RECORD

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        if mode == "sft":
            return {"messages": _task(row) + _words(row["messages"])}
        return {
            "prompt": _task(row),
            "chosen": _words(row["chosen"]),
            "rejected": _words(row["rejected"]),
        }

    full = datasets.load_from_disk(str(source))
    types = features(datasets, "sft" if mode == "sft" else "dpo")
    cut_splits = {name: split.map(cut, features=types) for name, split in full.items()}
    datasets.DatasetDict(cut_splits).save_to_disk(str(target))
    if (source / EXPORT_RECORD).is_file():
        shutil.copy(source / EXPORT_RECORD, target / EXPORT_RECORD)


def sim_pairs(folder: Path) -> Path:
    """`folder`/pairs: the pairs `arena pairs --format hf` exports from a small sim tournament
    (3 debaters, 4 motions, 2 turns; the database is `folder`/arena.duckdb), cut short."""
    from tests.conftest import run_arena, sim_models, tournament

    models = sim_models({"alpha": 2.0, "beta": 0.0, "gamma": 1.0}, turns=2)
    done = tournament(folder, models, 4)
    if done.returncode != 0:
        raise RuntimeError(f"the sim tournament failed: {done.stderr}")
    exported = run_arena(
        "pairs", "--db", folder / "arena.duckdb", "--out", folder / "full", "--format", "hf",
        "--test-fraction", "0.25",
    )  # fmt: skip
    if exported.returncode != 0:
        raise RuntimeError(f"arena pairs failed: {exported.stderr}")
    short_pairs(folder / "full", folder / "pairs")
    return folder / "pairs"
