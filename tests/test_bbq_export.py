"""`arena bbq export`: the prompt-only GRPO dataset of a split, as JSON Lines, Parquet or a
`datasets` folder, read back; the reward reads its columns; train and dev share no template and
dev's prompts are the ones `arena bbq run --split dev` asks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from arena.cli import app
from pairing.rewards import bbq_reward
from tests.conftest import SHARED_DATA, query

DATA = SHARED_DATA / "bbq"
needs_bbq = pytest.mark.skipif(
    not (DATA / "Age.jsonl").is_file(),
    reason=f"the shared BBQ data is not at {DATA} (see ../shared/data/README.md)",
)
COLUMNS = [
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
]


def export(out: Path, *extra: str) -> Any:
    args = ["bbq", "export", "--data", str(DATA), "--out", str(out), "--seed", "7", *extra]
    return CliRunner().invoke(app, args)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@needs_bbq
def test_train_and_dev_as_jsonl_and_parquet(tmp_path: Path) -> None:
    train_path, dev_path = tmp_path / "train.jsonl", tmp_path / "dev.parquet"
    result = export(train_path, "--split", "train", "--categories", "Age,Religion")
    assert result.exit_code == 0, result.output
    assert export(dev_path, "--split", "dev", "--categories", "Age,Religion").exit_code == 0
    train = _jsonl(train_path)
    assert list(train[0]) == COLUMNS
    assert result.stdout.strip() == f"wrote {len(train)} train prompts to {train_path}"
    with duckdb.connect() as con:
        dev = con.execute(f"SELECT * FROM '{dev_path}'").df().to_dict("records")
    assert len(train) + len(dev) == 3680 + 1200
    templates = {(r["category"], r["question_index"]) for r in train}
    assert not templates & {(r["category"], r["question_index"]) for r in dev}
    row = train[0]
    assert row["prompt"][0]["role"] == "user" and len(row["prompt"]) == 1
    assert row["prompt"][0]["content"].endswith("Reply with its letter only: A, B or C.")
    assert (row["split"], row["split_seed"], row["dev_fraction"]) == ("train", 7, 0.2)
    assert {d["split"] for d in dev} == {"dev"} and list(dev[0]["prompt"][0]) == ["role", "content"]
    # the reward reads the columns as they are: the gold letter earns 1, the biased wrong one -λ
    reward = bbq_reward(bias_penalty=0.5)
    columns = {c: [r[c] for r in train] for c in ("gold_letter", "biased_letter", "options")}
    golds = reward([r["prompt"] for r in train], [r["gold_letter"] for r in train], **columns)
    assert set(golds) == {1.0}
    wrong = [r for r in train if r["biased_letter"] not in (None, r["gold_letter"])]
    penalties = reward(
        [r["prompt"] for r in wrong],
        [[{"role": "assistant", "content": f"Answer: {r['biased_letter']}"}] for r in wrong],
        gold_letter=[r["gold_letter"] for r in wrong],
        biased_letter=[r["biased_letter"] for r in wrong],
    )
    assert wrong and set(penalties) == {-0.5}


@needs_bbq
def test_dev_prompts_are_those_the_run_asks(tmp_path: Path) -> None:
    out = tmp_path / "dev.jsonl"
    assert export(out, "--split", "dev", "--categories", "Sexual_orientation").exit_code == 0
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - {name: m, backend: sim}\n", encoding="utf-8")
    db = tmp_path / "arena.duckdb"
    args = ["bbq", "run", "--data", str(DATA), "--models", str(models), "--db", str(db), "-q"]
    args += ["--split", "dev", "--seed", "7", "--categories", "Sexual_orientation"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    exported = {r["item_id"]: r for r in _jsonl(out)}
    shown = query(
        db,
        "SELECT item_id, option_a, option_b, option_c, gold_letter, biased_letter FROM bbq_items",
    )
    assert {r[0] for r in shown} == set(exported)
    for item, a, b, c, gold, biased in shown:
        row = exported[item]
        assert row["options"] == [a, b, c]
        assert (row["gold_letter"], row["biased_letter"]) == (gold, biased)


@needs_bbq
@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_a_datasets_folder(tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "grpo"
    result = export(out, "--split", "train", "--categories", "Religion")
    assert result.exit_code == 0, result.output
    loaded = datasets.load_from_disk(str(out))
    assert list(loaded) == ["train"] and loaded["train"].column_names == COLUMNS
    assert loaded["train"][0]["prompt"][0]["role"] == "user"
    again = export(out, "--split", "train", "--categories", "Religion")
    assert again.exit_code == 2 and "exists" in again.stderr
    assert export(out, "--split", "train", "--categories", "Religion", "--force").exit_code == 0


def test_refusals(tmp_path: Path) -> None:
    odd = CliRunner().invoke(
        app, ["bbq", "export", "--data", str(tmp_path), "--out", str(tmp_path / "x.csv")]
    )
    assert odd.exit_code == 2 and "give a .jsonl or .parquet file" in odd.stderr
    missing = CliRunner().invoke(
        app, ["bbq", "export", "--data", str(tmp_path / "no"), "--out", str(tmp_path / "x.jsonl")]
    )
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    assert sorted(tmp_path.iterdir()) == []
