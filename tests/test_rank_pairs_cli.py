"""`arena rank` and `arena pairs` on a recorded simulated tournament, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from scipy.stats import kendalltau

from tests.conftest import run_arena, sim_models, tournament

SKILLS = {"s1": 2.0, "s2": 1.0, "s3": 0.0, "s4": -1.0, "s5": -2.0}


def _played(tmp_path: Path) -> Path:
    result = tournament(tmp_path, sim_models(SKILLS, turns=4, seed=1), 8, "-q")
    assert result.returncode == 0, result.stderr
    return tmp_path / "arena.duckdb"


def test_rank_orders_models_by_skill_with_seeded_intervals(tmp_path: Path) -> None:
    db = _played(tmp_path)
    first = run_arena("rank", "--db", db, "--format", "json", "--bootstrap", "200", "--seed", "3")
    assert first.returncode == 0, first.stderr
    board = json.loads(first.stdout)
    assert board["schema_version"] == 2 and board["battles"] == 5 * 4 * 8
    models = {m["model"]: m for m in board["models"]}
    assert set(models) == set(SKILLS)
    tau = kendalltau([SKILLS[n] for n in models], [models[n]["rating"] for n in models]).statistic
    assert tau >= 0.8
    for m in models.values():
        assert m["lower"] <= m["rating"] <= m["upper"]
    # the same seed gives the same intervals; the table names every model
    again = run_arena("rank", "--db", db, "--format", "json", "--bootstrap", "200", "--seed", "3")
    assert json.loads(again.stdout) == board
    table = run_arena("rank", "--db", db, "--bootstrap", "50")
    assert table.returncode == 0 and all(name in table.stdout for name in SKILLS)
    assert "FOR-side advantage" in table.stdout


def test_rank_without_a_database_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_arena("rank", "--db", tmp_path / "none.duckdb")
    assert result.returncode == 2 and result.stderr.startswith("error: no database")


def test_pairs_writes_a_topic_disjoint_dataset(tmp_path: Path) -> None:
    db = _played(tmp_path)
    out = tmp_path / "pairs.parquet"
    result = run_arena(
        "pairs", "--db", db, "--out", out, "--chosen-model", "s1", "--test-fraction", "0.25"
    )
    assert result.returncode == 0, result.stderr
    written = int(result.stdout.split()[1])
    with duckdb.connect() as con:
        rows = con.execute(
            f"select chosen_model, split, topic_id, len(prompt) from '{out}'"
        ).fetchall()
    assert len(rows) == written > 0
    assert {r[0] for r in rows} == {"s1"}
    train = {r[2] for r in rows if r[1] == "train"}
    test = {r[2] for r in rows if r[1] == "test"}
    assert train and test and not train & test
    assert all(n == 2 for *_, n in rows)  # system prompt and the turn's instruction
