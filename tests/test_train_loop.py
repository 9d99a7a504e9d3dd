"""The closed loop, on the embedded model (SmolLM2-135M), on the CPU, through the real commands:

    arena tournament -> arena pairs -> arena train dpo -> arena models add-adapter
      -> arena tournament (the adapter against its base) -> arena rank --compare

The contestants are the embedded model under three names (different decodings), with short
turns; the judge is the sim judge, which reads no strength tags in real text and so decides by
its seeded logistic noise: what matters here is that debates are decided both ways, so that
`arena pairs` finds pairs (a FOR turn from a debate FOR won against one from a debate it lost).
The pairs are trained on as exported (no cutting): two DPO steps with short sequences. A test of
the whole path, not of what training does to ratings: two steps move nothing measurable, and the
test says only that each command takes the last one's output and that the numbers it prints are
the ones in the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import query, require_local, run_arena, topics, write_yaml

require_local()

from training.deps import missing_train_modules  # noqa: E402

if missing_train_modules():
    pytest.skip(f"not installed: {', '.join(missing_train_modules())}", allow_module_level=True)

TOURNAMENT = {"turns": 2, "max_tokens": 16, "seed": 1}
JUDGE = {"name": "judge", "backend": "sim", "noise": 1.0}


def local(name: str, temperature: float) -> dict[str, Any]:
    return {
        "name": name,
        "backend": "local",
        "model": "smollm2-135m-instruct",
        "params": {"temperature": temperature, "top_p": 0.95, "no_repeat_ngram_size": 6},
    }


DPO = {
    "activation_checkpointing": False,
    "per_device_train_batch_size": 2,
    "max_length": 256,
    "learning_rate": 1e-4,
    "logging_steps": 1,
    "ppl_every": 2,
    "ppl_texts": 2,
    "ppl_bound": 1000.0,
}


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loop's folder after its last tournament: arena.duckdb, pairs/, adapter/, loop.yaml."""
    work = tmp_path_factory.mktemp("loop")
    db = work / "arena.duckdb"
    write_yaml(work / "topics.yaml", topics(3))
    first = {
        "tournament": TOURNAMENT,
        "models": [local("smol-a", 0.7), local("smol-b", 1.0), local("smol-c", 0.3)],
        "judges": [JUDGE],
    }
    write_yaml(work / "models.yaml", first)
    done = run_arena(
        "tournament", "--topics", work / "topics.yaml", "--models", work / "models.yaml",
        "--db", db, "--run", "loop-1", "-q", timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_arena(
        "pairs", "--db", db, "--run", "loop-1", "--out", work / "pairs", "--format", "hf",
        "--test-fraction", "0.34",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    write_yaml(work / "dpo.yaml", DPO)
    done = run_arena(
        "train", "dpo", "--pairs", work / "pairs", "--base", "smollm2-135m-instruct",
        "--out", work / "adapter", "--db", db, "--config", work / "dpo.yaml", "--max-steps", "2",
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    second = {"tournament": TOURNAMENT, "models": [local("smol-a", 0.7)], "judges": [JUDGE]}
    write_yaml(work / "loop.yaml", second)
    done = run_arena(
        "models", "add-adapter", "smol-dpo", "--base", "smol-a", "--adapter", work / "adapter",
        "--models", work / "loop.yaml",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_arena(
        "tournament", "--topics", work / "topics.yaml", "--models", work / "loop.yaml",
        "--db", db, "--run", "loop-2", "-q", timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return work


def test_pairs_come_from_the_first_tournament_and_train_the_adapter(loop: Path) -> None:
    db = loop / "arena.duckdb"
    [(status, steps, pairs)] = query(db, "SELECT status, steps, pairs FROM training_runs")
    assert (status, steps) == ("done", 2)
    provenance = json.loads(pairs)
    assert provenance["export"]["run_id"] == "loop-1" and provenance["splits"]["train"] > 0
    runs = query(
        db,
        "SELECT DISTINCT d.run_id FROM debates d WHERE list_contains("
        "(SELECT CAST(pairs -> '$.debate_ids' AS VARCHAR[]) FROM training_runs), d.debate_id)",
    )
    assert runs == [("loop-1",)]
    losses = query(db, "SELECT step, value FROM training_metrics WHERE name = 'loss' ORDER BY 1")
    assert [step for step, _ in losses] == [1, 2]


def test_the_adapter_plays_its_base(loop: Path) -> None:
    import yaml

    entries = yaml.safe_load((loop / "loop.yaml").read_text())["models"]
    [added] = [e for e in entries if e["name"] == "smol-dpo"]
    assert added["backend"] == "local" and Path(added["adapter"]) == loop / "adapter"
    db = loop / "arena.duckdb"
    rows = query(
        db,
        "SELECT t.model, count(*) FROM turns t JOIN debates d USING (debate_id) "
        "WHERE d.run_id = 'loop-2' GROUP BY ALL ORDER BY 1",
    )
    # 3 topics x both sides = 6 debates of 2 turns: each model speaks once in each
    assert rows == [("smol-a", 6), ("smol-dpo", 6)]
    texts = query(
        db,
        "SELECT t.text FROM turns t JOIN debates d USING (debate_id) "
        "WHERE d.run_id = 'loop-2' AND t.model = 'smol-dpo'",
    )
    assert all(text.strip() for (text,) in texts)


def test_rank_compare_prints_the_difference_the_store_holds(loop: Path) -> None:
    db = loop / "arena.duckdb"
    done = run_arena(
        "rank", "--db", db, "--run", "loop-2", "--compare", "smol-a", "smol-dpo", "-f", "json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["first"] == "smol-a" and result["second"] == "smol-dpo"
    assert result["lower"] <= result["difference"] <= result["upper"]
    [(decided,)] = query(
        db,
        "SELECT count(DISTINCT v.debate_id) FROM verdicts v JOIN debates d USING (debate_id) "
        "WHERE d.run_id = 'loop-2'",
    )
    assert result["head_to_head"]["total"]["battles"] == decided == 6
    table = run_arena("rank", "--db", db, "--run", "loop-2", "--compare", "smol-a", "smol-dpo")
    assert table.returncode == 0, table.stderr
    assert "smol-dpo - smol-a: " in table.stdout
