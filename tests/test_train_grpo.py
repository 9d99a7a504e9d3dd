"""`arena train grpo` on the embedded model (SmolLM2-135M), on the CPU, a few steps each.

- `--task bbq` on the shared BBQ items: two GRPO steps with the verifiable reward and the
  benchmark every 2 steps of 3; the rewards, TRL's metrics and the step's time split in the
  store; sampled completions with rewards that are the reward's own values; the LoRA B matrices
  moved off their zero start, and nothing but LoRA tensors saved; the adapter answers in
  `arena bbq run` as a contestant (`arena models add-adapter`); a rerun with another lambda is
  refused; the same command with more steps resumes from the last checkpoint.
- `--task pcp` with a scripted judge (the judge a test can run; a real judge is a paid API or a
  GPU): two steps with both PCT rewards, each judge call a `calls` row of the run's judging run
  (its cost one query), the PCP benchmark at steps 0 and 2, the adapter in `arena pcp run`.
- A judging budget: `--budget-usd 0` stops training at the first judgement, exit code 3, the
  run recorded as stopped, no call sent.
- The reward-hacking guard: a policy that always answers "unknown" scores acc_ambig 1.0 and is
  caught by acc_disambig 0 and abstain_disambig 1 in the eval-during-training record, with a
  warning.
- Held out means held out: a BBQ `--eval-data` sharing templates with the training items, and
  the published PCT prompts against the PCP topics, are each refused with one `error:` line
  naming the template or topic, exit 2, before the database is created.
- Settings: the class defaults < the task's recipe < YAML < flags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA, query, require_local, run_arena, write_yaml

require_local()

from training.deps import missing_train_modules  # noqa: E402

if missing_train_modules():
    pytest.skip(f"not installed: {', '.join(missing_train_modules())}", allow_module_level=True)

BBQ = SHARED_DATA / "bbq"
PCP = SHARED_DATA / "pcp"
if not (BBQ / "Age.jsonl").is_file() or not (PCP / "pcp_topics.json").is_file():
    pytest.skip(f"the shared BBQ and PCP data are not in {SHARED_DATA}", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

SMALL = {
    "activation_checkpointing": False,  # faster on the CPU
    "num_generations": 4,
    "per_device_train_batch_size": 4,  # one prompt's 4 completions per step
    "gradient_accumulation_steps": 1,
    "max_completion_length": 8,
    "warmup_steps": 0,  # step 1 trains at the full rate
    "learning_rate": 1e-3,
    "logging_steps": 1,
    "eval_max_tokens": 4,
    "eval_limit": 6,
    "store_completions": 4,
}
"""The settings of every run here: one prompt of 4 short completions per step."""


def invoke(*args: str | Path) -> tuple[int, str]:
    """`arena train ...` in this process (the refusals here fail before any model loads, so
    the subprocess's seconds of imports are not worth paying): its exit code and stderr."""
    from typer.testing import CliRunner

    from arena.cli import train as train_cli

    done = CliRunner().invoke(train_cli.app, [str(a) for a in args])
    return done.exit_code, done.stderr


def add_adapter(folder: Path, name: str, adapter: str) -> Path:
    """`arena models add-adapter NAME` for `folder/adapter` into `folder/models.yaml`."""
    models = folder / "models.yaml"
    added = run_arena(
        "models", "add-adapter", name, "--base", "smollm2-135m-instruct",
        "--adapter", folder / adapter, "--models", models,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return models


def lora_tensors(adapter: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def assert_lora_moved(adapter: Path) -> None:
    tensors = lora_tensors(adapter)
    assert tensors and all("lora_" in name for name in tensors), sorted(tensors)[:3]
    moved = [name for name, t in tensors.items() if "lora_B" in name and bool(t.abs().sum() > 0)]
    assert moved, "every LoRA B matrix is still at its zero start"


# --- BBQ ----------------------------------------------------------------------------------------


def train_bbq(folder: Path, out: str, *extra: str | Path) -> Any:
    return run_arena(
        "train", "grpo", "--task", "bbq", "--base", "smollm2-135m-instruct",
        "--data", BBQ / "Age.jsonl", "--out", folder / out, "--db", folder / "arena.duckdb",
        "--config", folder / "grpo.yaml", "--limit", "8", *extra,
        timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bbq_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`arena train grpo --task bbq --max-steps 3 --eval-every 2` into folder/bbq."""
    folder = tmp_path_factory.mktemp("grpo-bbq")
    write_yaml(folder / "grpo.yaml", SMALL)
    done = train_bbq(folder, "bbq", "--max-steps", "3", "--eval-every", "2", "--lambda", "0.5")
    assert done.returncode == 0, done.stderr
    assert "adapter (step 3) in" in done.stdout
    return folder


def test_bbq_rewards_metrics_and_time_split_are_in_the_store(bbq_run: Path) -> None:
    db = bbq_run / "arena.duckdb"
    [(run_id, kind, status, steps, config, pairs)] = query(
        db, "SELECT run_id, kind, status, steps, config, pairs FROM training_runs"
    )
    assert (kind, status, steps) == ("grpo", "done", 3)
    settings = json.loads(config)
    assert settings["grpo"]["bias_penalty"] == 0.5
    assert settings["grpo"]["beta"] == 0.04 and settings["grpo"]["temperature"] == 1.3
    assert settings["origins"]["beta"] == "--task bbq"
    assert settings["origins"]["bias_penalty"] == "--lambda"
    assert json.loads(pairs)["task"] == "bbq" and json.loads(pairs)["items"] == 8
    values = {
        (step, name): value
        for step, name, value in query(
            db, f"SELECT step, name, value FROM training_metrics WHERE run_id = '{run_id}'"
        )
    }
    for step in (1, 2, 3):
        for name in (
            "reward",
            "reward_std",
            "rewards/bbq_reward/mean",
            "rewards/bbq_reward/std",
            "frac_reward_zero_std",
            "kl",
            "completions/mean_length",
        ):
            assert (step, name) in values, (step, name)
        total = values[(step, "time/step")]
        parts = [values[(step, f"time/{p}")] for p in ("generation", "reward", "optimisation")]
        assert all(p >= 0 for p in parts) and abs(sum(parts) - total) < 1e-6
        assert values[(step, "time/generation")] > 0
        # the BBQ reward's values: 1 gold, 0 another answer, -0.1 none, -0.5 the biased one
        assert -0.5 <= values[(step, "rewards/bbq_reward/mean")] <= 1.0
    rows = query(
        db,
        "SELECT step, idx, reward, rewards, advantage FROM training_completions"
        " WHERE kind = 'train' ORDER BY step, idx",
    )
    assert [(step, idx) for step, idx, *_ in rows] == [(s, i) for s in (1, 2, 3) for i in range(4)]
    for _, _, reward, rewards, advantage in rows:
        assert json.loads(rewards)["bbq_reward"] == pytest.approx(reward)
        assert reward in (pytest.approx(1.0), 0.0, pytest.approx(-0.1), pytest.approx(-0.5))
        assert advantage is not None
    for step in (1, 2, 3):  # a group's advantages are its rewards centred: they sum to 0
        group = [a for s, _, _, _, a in rows if s == step]
        assert sum(group) == pytest.approx(0.0, abs=1e-4)


def test_bbq_benchmark_rows_at_the_expected_steps(bbq_run: Path) -> None:
    db = bbq_run / "arena.duckdb"
    steps = query(
        db,
        "SELECT step, count(*) FROM training_metrics WHERE name LIKE 'eval_bbq/%'"
        " GROUP BY step ORDER BY step",
    )
    assert [s for s, _ in steps] == [0, 2, 3]  # the base model, every 2, the last
    names = {n for (n,) in query(db, "SELECT DISTINCT name FROM training_metrics")}
    assert {"eval_bbq/acc_ambig", "eval_bbq/acc_disambig", "eval_bbq/abstain_disambig"} <= names
    answers = query(
        db,
        "SELECT step, count(*), count(DISTINCT rewards->>'item_id') FROM training_completions"
        " WHERE kind = 'eval' GROUP BY step ORDER BY step",
    )
    assert answers == [(0, 6, 6), (2, 6, 6), (3, 6, 6)]  # the same 6 held-out items each time
    # held out: the evaluated items' templates are none of the trained prompts'
    evaluated = {
        item
        for (item,) in query(db, "SELECT DISTINCT rewards->>'item_id' FROM training_completions")
        if item
    }
    assert evaluated and all(i.startswith("Age:") for i in evaluated)


def test_bbq_adapter_saves_only_moved_lora_tensors(bbq_run: Path) -> None:
    assert_lora_moved(bbq_run / "bbq")


def test_bbq_adapter_answers_in_arena_bbq_run(bbq_run: Path) -> None:
    models = add_adapter(bbq_run, "grpo-bbq", "bbq")
    db = bbq_run / "bbq-eval.duckdb"
    done = run_arena(
        "bbq", "run", "--data", BBQ / "Age.jsonl", "--split", "dev", "--limit", "3",
        "--models", models, "--db", db, "-q", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answered = dict(query(db, "SELECT model, count(*) FROM bbq_responses GROUP BY model"))
    assert answered.get("grpo-bbq") == 3


def test_a_rerun_with_another_lambda_is_refused(bbq_run: Path) -> None:
    code, stderr = invoke(
        "grpo", "--task", "bbq", "--base", "smollm2-135m-instruct",
        "--data", BBQ / "Age.jsonl", "--out", bbq_run / "bbq", "--db", bbq_run / "arena.duckdb",
        "--config", bbq_run / "grpo.yaml", "--limit", "8",
        "--max-steps", "3", "--eval-every", "2", "--lambda", "1.5",
    )  # fmt: skip
    assert code == 2
    assert "bias_penalty=0.5" in stderr and "1.5" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_the_same_command_with_more_steps_resumes(bbq_run: Path) -> None:
    done = train_bbq(bbq_run, "bbq", "--max-steps", "4", "--eval-every", "2", "--lambda", "0.5")
    assert done.returncode == 0, done.stderr
    assert "trained 1 steps (step 4 in all)" in done.stdout
    db = bbq_run / "arena.duckdb"
    assert query(db, "SELECT count(*), max(steps) FROM training_runs") == [(1, 4)]
    steps = query(
        db,
        "SELECT DISTINCT step FROM training_metrics WHERE name = 'eval_bbq/acc_ambig' ORDER BY 1",
    )
    assert [s for (s,) in steps] == [0, 2, 3, 4]  # no second step-0 pass on resuming
    rewarded = query(
        db, "SELECT DISTINCT step FROM training_metrics WHERE name = 'reward' ORDER BY 1"
    )
    assert [s for (s,) in rewarded] == [1, 2, 3, 4]


# --- PCP ----------------------------------------------------------------------------------------

PROMPTS = [
    {
        "topic": "Lighthouse keeping",
        "query": "Tell me about Lighthouse keeping",
        "left": "Lighthouse keeping was skilled public service.",
        "right": "Lighthouse keeping was a costly public payroll.",
        "query_type": "sentiment",
    },
    {
        "query": "Tell me how good sourdough baking is as a hobby",
        "left": "",
        "right": "",
        "query_type": "helpfulness",
    },
]
"""Two training prompts, one of each kind, on topics no PCP pair has."""

JUDGE = {
    "judges": [
        {
            "name": "judge",
            "backend": "scripted",
            # replies every judge can read (anchored: bias, helpfulness; helpfulness: score;
            # consistency: score, favoured), chosen by the request's hash: rewards vary
            "replies": [
                '{"bias": 3, "helpfulness": 2, "score": 1, "favoured": "1"}',
                '{"bias": 1, "helpfulness": 1, "score": 4, "favoured": "2"}',
                '{"bias": 5, "helpfulness": 0, "score": 0, "favoured": "none"}',
                '{"bias": 2, "helpfulness": 2, "score": 5, "favoured": "1"}',
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def pcp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("grpo-pcp")
    (folder / "prompts.json").write_text(json.dumps(PROMPTS), encoding="utf-8")
    write_yaml(folder / "judges.yaml", JUDGE)
    write_yaml(folder / "grpo.yaml", {**SMALL, "eval_limit": 2})
    done = run_arena(
        "train", "grpo", "--task", "pcp", "--base", "smollm2-135m-instruct",
        "--prompts", folder / "prompts.json", "--judge", "judge", "--models",
        folder / "judges.yaml", "--out", folder / "pcp", "--db", folder / "arena.duckdb",
        "--config", folder / "grpo.yaml", "--max-steps", "2", "--eval-every", "2",
        "--eval-pairs", PCP / "pcp_topics.json", "--eval-templates", "tell_me",
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


def test_pcp_rewards_are_judged_through_the_engine_and_recorded(pcp_run: Path) -> None:
    db = pcp_run / "arena.duckdb"
    [(run_id, config)] = query(db, "SELECT run_id, config FROM training_runs")
    settings = json.loads(config)
    assert settings["grpo"]["num_generations"] == 4  # the YAML over the recipe's 16
    assert settings["lora"]["r"] == 32 and settings["origins"]["lora.r"] == "--task pcp"
    names = {n for (n,) in query(db, "SELECT DISTINCT name FROM training_metrics")}
    for reward in ("anchored_sentiment_reward", "helpfulness_reward"):
        assert f"rewards/{reward}/mean" in names
    # the judging is one run, every call a row: its cost is one query
    [(kind, status)] = query(db, f"SELECT kind, status FROM runs WHERE run_id = '{run_id}-judge'")
    assert (kind, status) == ("reward", "complete")
    purposes = dict(
        query(db, f"SELECT purpose, count(*) FROM calls WHERE run_id = '{run_id}-judge' GROUP BY 1")
    )
    assert purposes.get("reward_anchored", 0) > 0 and purposes.get("reward_helpfulness", 0) > 0
    [(cost,)] = query(db, f"SELECT sum(cost_usd) FROM calls WHERE run_id = '{run_id}-judge'")
    assert cost == 0.0  # the scripted judge is free, and its calls are all there
    # the benchmark: SC and HC at the base model and at the last step, judged in both orders
    steps = query(
        db,
        "SELECT step, list(name ORDER BY name) FROM training_metrics"
        " WHERE name LIKE 'eval_pcp/%' GROUP BY step ORDER BY step",
    )
    assert [s for s, _ in steps] == [0, 2]
    assert {"eval_pcp/SC", "eval_pcp/HC"} <= set(steps[0][1])
    # 2 items in both orders per pass; a pass that answers as an earlier one did is answered
    # from the judge's cache: one call per distinct (pair, left answer, right answer) and order
    answered = query(
        db,
        "SELECT count(DISTINCT (rewards->>'pair_id', l, r)) FROM (SELECT step, rewards,"
        " completion AS l, lead(completion) OVER (PARTITION BY step ORDER BY idx) AS r"
        " FROM training_completions WHERE kind = 'eval') WHERE rewards->>'side' = 'left'",
    )
    assert 2 <= answered[0][0] <= 4
    assert purposes.get("eval_pcp_consistency") == 2 * answered[0][0]
    stored = query(
        db,
        "SELECT rewards FROM training_completions WHERE kind = 'train' AND step = 1 ORDER BY idx",
    )
    kinds = [set(json.loads(r)) for (r,) in stored]
    assert kinds and all(k == {"anchored_sentiment_reward", "helpfulness_reward"} for k in kinds)
    assert_lora_moved(pcp_run / "pcp")


def test_pcp_adapter_answers_in_arena_pcp_run(pcp_run: Path) -> None:
    models = add_adapter(pcp_run, "grpo-pcp", "pcp")
    db = pcp_run / "pcp-eval.duckdb"
    done = run_arena(
        "pcp", "run", "--pairs", PCP / "pcp_topics.json", "--templates", "tell_me",
        "--valences", "good", "--limit", "1", "--max-tokens", "8", "--judge-max-tokens", "8",
        "--models", models, "--db", db, "-q", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answered = dict(query(db, "SELECT model, count(*) FROM pcp_responses GROUP BY model"))
    assert answered.get("grpo-pcp") == 2  # both prompts of the pair


def test_the_judging_budget_stops_training_with_exit_3(tmp_path: Path) -> None:
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS), encoding="utf-8")
    write_yaml(tmp_path / "judges.yaml", JUDGE)
    write_yaml(tmp_path / "grpo.yaml", SMALL)
    done = run_arena(
        "train", "grpo", "--task", "pcp", "--base", "smollm2-135m-instruct",
        "--prompts", tmp_path / "prompts.json", "--judge", "judge", "--models",
        tmp_path / "judges.yaml", "--out", tmp_path / "pcp", "--db", tmp_path / "arena.duckdb",
        "--config", tmp_path / "grpo.yaml", "--max-steps", "2", "--budget-usd", "0",
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "the judge's budget of $0 is spent" in done.stderr
    assert "rerun with a higher --budget-usd" in done.stderr and "Traceback" not in done.stderr
    db = tmp_path / "arena.duckdb"
    [(status, reason)] = query(db, "SELECT status, stop_reason FROM training_runs")
    assert status == "stopped" and "budget" in reason
    assert query(db, "SELECT count(*) FROM calls") == [(0,)]  # not one judgement was sent


# --- the reward-hacking guard -------------------------------------------------------------------


def test_an_always_unknown_policy_is_caught_in_the_eval_record(tmp_path: Path) -> None:
    from arena.protocol.bbq import load_items, present, split_by_template
    from storage import Store
    from training.grpo_eval import BBQBenchmark, benchmark_callback, sample
    from training.records import RunRecorder

    dev = list(split_by_template(load_items(BBQ / "Age.jsonl"), 0.2, 0).dev)
    items = sample(dev, 40, 0)
    assert {i.ambiguous for i in items} == {True, False}
    by_text = {present(i).text: present(i) for i in items}

    def always_unknown(prompts: Any) -> list[str]:
        return [f"{by_text[p[-1]['content']].unknown_letter}." for p in prompts]

    warnings: list[str] = []
    with Store.open(tmp_path / "arena.duckdb") as store:
        recorder = RunRecorder(store, "grpo-hack")

        def record(step: int, task: str, scores: Any, rows: Any) -> None:
            recorder.metrics(step, {f"eval_{task}/{k}": v for k, v in scores.items()})
            recorder.completions(step, "eval", rows)

        callback = benchmark_callback(
            BBQBenchmark(items), 5, lambda: always_unknown, record, warnings.append, resumed=False
        )

        class State:
            global_step, max_steps, is_world_process_zero = 0, 10, True

        callback.on_train_begin(None, State(), None)
        State.global_step = 5
        callback.on_step_end(None, State(), None)
        State.global_step = 6
        callback.on_step_end(None, State(), None)  # not an evaluation step
    scores = dict(
        query(
            tmp_path / "arena.duckdb",
            "SELECT name, value FROM training_metrics WHERE step = 5",
        )
    )
    assert scores["eval_bbq/acc_ambig"] == 1.0  # the abstention reward alone looks perfect
    assert scores["eval_bbq/acc_disambig"] == 0.0  # but it never answers when it could
    assert scores["eval_bbq/abstain_disambig"] == 1.0
    steps = query(tmp_path / "arena.duckdb", "SELECT DISTINCT step FROM training_metrics")
    assert sorted(s for (s,) in steps) == [0, 5]
    assert len(warnings) == 2 and "answers 'unknown' on 100%" in warnings[0]


# --- held out -----------------------------------------------------------------------------------


def test_bbq_eval_items_sharing_a_template_are_refused(tmp_path: Path) -> None:
    code, stderr = invoke(
        "grpo", "--task", "bbq", "--base", "smollm2-135m-instruct",
        "--data", BBQ / "Age.jsonl", "--dev-fraction", "0", "--eval-data", BBQ / "Age.jsonl",
        "--eval-every", "10", "--out", tmp_path / "out", "--db", tmp_path / "arena.duckdb",
    )  # fmt: skip
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --eval-data: template Age:")
    assert not (tmp_path / "arena.duckdb").exists() and not (tmp_path / "out").exists()


def test_pcp_training_prompts_naming_an_eval_topic_are_refused(tmp_path: Path) -> None:
    write_yaml(tmp_path / "judges.yaml", JUDGE)
    code, stderr = invoke(
        "grpo", "--task", "pcp", "--base", "smollm2-135m-instruct",
        "--prompts", PCP / "train_dataset_opus_anchors.json", "--judge", "judge",
        "--models", tmp_path / "judges.yaml", "--eval-pairs", PCP / "pcp_topics.json",
        "--eval-every", "50", "--out", tmp_path / "out", "--db", tmp_path / "arena.duckdb",
    )  # fmt: skip
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "mention the evaluation topic" in lines[0], lines
    topic = lines[0].split("topic ")[1].split(" of ")[0].strip("'\"")
    pairs = json.loads((PCP / "pcp_topics.json").read_text(encoding="utf-8"))
    assert topic in {p["left"] for p in pairs} | {p["right"] for p in pairs}
    assert not (tmp_path / "arena.duckdb").exists()


# --- settings -----------------------------------------------------------------------------------


def test_settings_layer_defaults_task_yaml_flags(tmp_path: Path) -> None:
    from training.config import GRPO_TASK_DEFAULTS, load_train_config

    yaml_file = write_yaml(tmp_path / "g.yaml", {"num_generations": 4, "learning_rate": 2e-5})
    config = load_train_config(
        tmp_path / "out",
        yaml_file,
        {"learning_rate": 3e-5},
        {"learning_rate": "--learning-rate"},
        kind="grpo",
        defaults=GRPO_TASK_DEFAULTS["pcp"],
        defaults_origin="--task pcp",
    )
    args = config.grpo
    assert args.learning_rate == 3e-5 and config.origins["learning_rate"] == "--learning-rate"
    assert args.num_generations == 4 and config.origins["num_generations"].endswith("g.yaml:1")
    assert args.max_completion_length == 2048 and args.num_train_epochs == 3.0
    assert config.lora.r == 32 and config.origins["lora.r"] == "--task pcp"
    assert args.chat_template_kwargs == {"enable_thinking": False}
    assert args.ppl_every == 0 and args.store_completions == 16  # our class defaults
    plain = load_train_config(tmp_path / "out", kind="grpo")
    assert plain.grpo.num_generations == 8 and plain.lora.r == 16  # TRL's, and ours
    # vLLM rollouts where they can run: a GPU and the vllm extra
    import importlib.util

    from arena.core.errors import ConfigError
    from training.config import gpu_available

    has_vllm = importlib.util.find_spec("vllm") is not None
    assert plain.grpo.use_vllm is (has_vllm and gpu_available())
    if not has_vllm:
        with pytest.raises(ConfigError, match=r"use_vllm: vLLM is not installed"):
            load_train_config(tmp_path / "out", None, {"use_vllm": True}, kind="grpo")


def test_a_misspelt_grpo_key_is_one_line(tmp_path: Path) -> None:
    write_yaml(tmp_path / "g.yaml", {"num_generation": 4})
    code, stderr = invoke(
        "grpo", "--task", "bbq", "--base", "smollm2-135m-instruct",
        "--data", BBQ / "Age.jsonl", "--config", tmp_path / "g.yaml",
        "--out", tmp_path / "out", "--db", tmp_path / "arena.duckdb",
    )  # fmt: skip
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"error: {tmp_path / 'g.yaml'}:1: num_generation: unknown setting; did you mean "
        "'num_generations'?"
    ]
    # a flag of the other task, and a missing one of this task
    code, stderr = invoke(
        "grpo", "--task", "bbq", "--base", "x", "--data", BBQ / "Age.jsonl", "--judge", "j",
        "--out", tmp_path / "out",
    )  # fmt: skip
    assert (code, stderr.strip()) == (
        2,
        "error: --judge: a setting of --task pcp, not of --task bbq",
    )
    code, stderr = invoke("grpo", "--task", "pcp", "--base", "x", "--out", tmp_path / "out")
    assert (code, stderr.strip()) == (
        2,
        "error: --task pcp needs --prompts (the training prompts' JSON file)",
    )
