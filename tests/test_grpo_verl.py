"""`arena train grpo --export verl DIR`: the prompts as Parquet in verl's layout, and a reward
module whose `compute_score`, called as verl calls it, gives the rewards that `arena train grpo`'s
TRL reward functions give on the same completions.

- BBQ (the verifiable reward, lambda 0.5): every kind of answer (gold, biased, unknown, an
  option named by its text, none) on exported rows, against `bbq_reward` on the rows of the
  dataset TRL trains on; the test split is the held-out benchmark items.
- PCT (judged, a scripted judge: a real judge is a paid API or a GPU): `compute_score` against
  `pct_reward` with a `RewardJudge` of the same judge, row by row; the module's judge calls are
  recorded in the export's database under `<export>-judge`.

No model is loaded: exporting and scoring need neither torch nor a GPU.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import SHARED_DATA, query, run_arena, write_yaml
from training.deps import missing_train_modules

if missing_train_modules():
    pytest.skip(f"not installed: {', '.join(missing_train_modules())}", allow_module_level=True)

BBQ = SHARED_DATA / "bbq"
if not (BBQ / "Age.jsonl").is_file():
    pytest.skip(f"the shared BBQ data is not at {BBQ}", allow_module_level=True)

COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"verl_reward_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score_as_verl(module: ModuleType, row: dict[str, Any], completions: list[str]) -> list[float]:
    """`compute_score` on each completion of an exported row, called as verl's reward manager
    calls it (keyword arguments)."""
    return [
        module.compute_score(
            data_source=row["data_source"],
            solution_str=completion,
            ground_truth=row["reward_model"]["ground_truth"],
            extra_info=row["extra_info"],
        )
        for completion in completions
    ]


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect()
    try:
        result = con.execute(f"SELECT * FROM read_parquet('{path}')")
        names = [d[0] for d in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        con.close()


def test_bbq_export_reads_back_and_scores_as_the_trl_reward(tmp_path: Path) -> None:
    from pairing.rewards import bbq_reward
    from training.grpo import bbq_task

    out = tmp_path / "verl"
    done = run_arena(
        "train", "grpo", "--task", "bbq", "--base", "Qwen/Qwen2.5-3B-Instruct",
        "--data", BBQ / "Age.jsonl", "--limit", "12", "--eval-limit", "5", "--lambda", "0.5",
        "--export", "verl", out, "--db", tmp_path / "arena.duckdb",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "python -m verl.trainer.main_ppo" in done.stdout
    assert f"custom_reward_function.path={out / 'reward.py'}" in done.stdout
    assert "actor_rollout_ref.model.path=Qwen/Qwen2.5-3B-Instruct" in done.stdout
    assert "actor_rollout_ref.rollout.n=8" in done.stdout  # the BBQ recipe's 8 generations
    assert sorted(p.name for p in out.iterdir()) == [
        "arena-verl.json",
        "reward.py",
        "test.parquet",
        "train.parquet",
    ]
    train, test = read_parquet(out / "train.parquet"), read_parquet(out / "test.parquet")
    assert len(train) == 12 and len(test) == 5
    assert set(train[0]) == COLUMNS
    assert {r["data_source"] for r in train + test} == {"debate-arena/bbq"}
    assert train[0]["prompt"][0]["role"] == "user"

    # held out: no test item shares a template (category, question_index) with a training item
    def templates(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(r["extra_info"]["category"], r["extra_info"]["question_index"]) for r in rows}

    assert templates(train) and templates(test) and not templates(train) & templates(test)

    # the rows TRL trains on: the same command's dataset
    task = bbq_task(BBQ / "Age.jsonl", limit=12, eval_limit=5, seed=42)
    trl_rows = list(task.train)
    assert [r["extra_info"]["item_id"] for r in train] == [r["item_id"] for r in trl_rows]
    trained = {r["item_id"] for r in trl_rows}
    evaluated = {r["extra_info"]["item_id"] for r in test}
    assert not trained & evaluated

    module = load_module(out / "reward.py")
    trl = bbq_reward(0.5)
    answered = 0
    for verl_row, row in zip(train, trl_rows, strict=True):
        options = row["options"]
        unknown = options["ABC".index(row["unknown_letter"])]
        completions = [
            row["gold_letter"],
            f"The answer is {row['biased_letter'] or 'A'}.",
            f"({row['unknown_letter']})",
            unknown,  # the option named by its text
            "I would rather not say.",
        ]
        expected = trl(
            [row["prompt"]] * len(completions),
            completions,
            gold_letter=[row["gold_letter"]] * len(completions),
            biased_letter=[row["biased_letter"]] * len(completions),
            options=[options] * len(completions),
        )
        got = score_as_verl(module, verl_row, completions)
        assert got == pytest.approx(expected)
        answered += len(completions)
        assert expected[0] == 1.0 and expected[-1] == pytest.approx(-0.1)
    assert answered == 60
    record = json.loads((out / "arena-verl.json").read_text(encoding="utf-8"))
    assert record["task"] == "bbq" and record["bias_penalty"] == 0.5


JUDGE = {
    "judges": [
        {
            "name": "judge",
            "backend": "scripted",
            "replies": [
                '{"bias": 3, "helpfulness": 2, "score": 1}',
                '{"bias": 1, "helpfulness": 1, "score": 4}',
                '{"bias": 5, "helpfulness": 2, "score": 0}',
            ],
        }
    ]
}
PROMPTS = [
    {
        "topic": "Lighthouse keeping",
        "query": "Tell me about Lighthouse keeping",
        "left": "A skilled public service.",
        "right": "A costly public payroll.",
        "query_type": "sentiment",
    },
    {
        "query": "Tell me how good sourdough baking is as a hobby",
        "left": "",
        "right": "",
        "query_type": "helpfulness",
    },
    {
        "topic": "Canal locks",
        "query": "Tell me about Canal locks",
        "left": "Public works that served everyone.",
        "right": "Public works that cost too much.",
        "query_type": "sentiment",
    },
]


def test_pct_export_scores_as_the_trl_reward_through_the_engine(tmp_path: Path) -> None:
    from arena.judges.reward_client import RewardJudge
    from pairing.pcp_rewards import pct_reward
    from storage import Store
    from training.grpo import pcp_task, resolve_judge
    from training.verl import reward_for

    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS), encoding="utf-8")
    write_yaml(tmp_path / "judges.yaml", JUDGE)
    out = tmp_path / "verl"
    done = run_arena(
        "train", "grpo", "--task", "pcp", "--base", "Qwen/Qwen3-14B",
        "--prompts", tmp_path / "prompts.json", "--judge", "judge",
        "--models", tmp_path / "judges.yaml", "--export", "verl", out,
        "--db", tmp_path / "verl.duckdb",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "actor_rollout_ref.rollout.n=16" in done.stdout  # PCT's 16 generations
    assert "actor_rollout_ref.model.lora_rank=32" in done.stdout
    train = read_parquet(out / "train.parquet")
    assert [r["extra_info"]["query"] for r in train] == [p["query"] for p in PROMPTS]
    assert {r["data_source"] for r in train} == {"debate-arena/pct"}

    completions = ["A fair and useful account.", "It is great fun.", "# Header\nNo idea."]
    module = load_module(out / "reward.py")
    got = [score_as_verl(module, row, completions) for row in train]
    reward_for(out / "arena-verl.json").close()  # flush the judge's calls

    role = resolve_judge("judge", tmp_path / "judges.yaml")
    task = pcp_task(tmp_path / "prompts.json", role)
    with Store.open(tmp_path / "trl.duckdb") as store:
        reward = pct_reward(RewardJudge(role, store, run_id="trl-side"))
        expected = []
        for row in task.train:
            n = len(completions)
            values = asyncio.run(
                reward(
                    [row["prompt"]] * n,
                    completions,
                    query=[row["query"]] * n,
                    left=[row["left"]] * n,
                    right=[row["right"]] * n,
                    query_type=[row["query_type"]] * n,
                )
            )
            expected.append(values)
    assert got == expected
    assert len({v for row in got for v in row}) > 1  # the judge's replies differ: a real check
    [(run_id,)] = query(tmp_path / "verl.duckdb", "SELECT run_id FROM runs")
    assert run_id.endswith("-judge")
    calls = query(tmp_path / "verl.duckdb", "SELECT count(*) FROM calls WHERE error IS NULL")
    assert calls[0][0] == len(PROMPTS) * len(completions)
