"""GRPO beyond one node: `arena train grpo ... --export verl DIR`, the task's prompts and reward
for verl (Ray, FSDP, vLLM rollouts), which scales past what TRL + accelerate covers.

`export_verl(task, out, ...)` writes, whole or not at all:

- `train.parquet` and `test.parquet` in verl's RL dataset layout, one row per prompt:
  `data_source` (`debate-arena/bbq` or `debate-arena/pct`), `prompt` (the chat, a list of
  `{role, content}`), `ability`, `reward_model` (`{style, ground_truth}`: BBQ's gold letter; empty
  for PCT, whose reward is judged) and `extra_info` (`split`, `index`, and the columns the task's
  reward reads: BBQ's `biased_letter`, `unknown_letter`, `options`, `item_id`, `category`,
  `question_index`; PCT's `query`,
  `left`, `right`, `query_type`). BBQ's test split is the held-out benchmark items (the dev split
  or `--eval-data`); PCT has no held-out prompts of its kind, so its `test.parquet` is a seeded
  sample of the training prompts (verl's validation then reports the reward on prompts it
  trains on: a progress figure, not a held-out score).
- `reward.py`: a module whose `compute_score(data_source, solution_str, ground_truth,
  extra_info=None, **kwargs)` is verl's custom reward function
  (`custom_reward_function.path=DIR/reward.py`). It calls `VerlReward`, the same reward as
  `arena train grpo`: `pairing.rewards.bbq_reward` with the run's lambda, or
  `pairing.pcp_rewards.pct_reward` judged by the judge of the models file through the engine
  (`RewardJudge`: limits, retries, the cache, every call a `calls` row of the run
  `<export>-judge` in `--db`). The module needs debate-arena installed where verl runs its reward.
- `arena-verl.json`: what the module reads (the task, lambda, the judge's name and models file,
  the database) and the verl command line, also printed.

Simplified on purpose: verl calls `compute_score` once per completion, so the PCT reward judges
one completion at a time there (no batch concurrency), and a failed judgement scores 0.0 (there
is no group to take a mean from); the database is opened by the process that first calls it
(verl's reward manager runs in one process).
"""

from __future__ import annotations

import atexit
import json
import shlex
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from arena.core.files import atomic_output

RECORD: Final = "arena-verl.json"
MODULE: Final = "reward.py"
DATA_SOURCES: Final = {"bbq": "debate-arena/bbq", "pcp": "debate-arena/pct"}
ABILITIES: Final = {"bbq": "bias", "pcp": "political_consistency"}
PCT_TEST_ROWS: Final = 64
NODES: Final = 2
GPUS_PER_NODE: Final = 8
"""The shape the printed verl command assumes (edit it for yours)."""

_MODULE_TEXT: Final = '''"""verl's custom reward for debate-arena's {task} task, written by
`arena train grpo --export verl`: compute_score calls training.verl.VerlReward with the settings
in arena-verl.json beside this file."""

from pathlib import Path

from training.verl import reward_for

_RECORD = Path(__file__).with_name("arena-verl.json")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return reward_for(_RECORD)(data_source, solution_str, ground_truth, extra_info)
'''


def _bbq_rows(task: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The BBQ train rows (the training dataset) and test rows (the benchmark's items)."""
    from pairing.bbq_export import export_rows

    def verl(rows: Sequence[Mapping[str, Any]], split: str) -> list[dict[str, Any]]:
        return [
            {
                "data_source": DATA_SOURCES["bbq"],
                "prompt": list(row["prompt"]),
                "ability": ABILITIES["bbq"],
                "reward_model": {"style": "rule", "ground_truth": row["gold_letter"]},
                "extra_info": {
                    "split": split,
                    "index": index,
                    "item_id": row["item_id"],
                    "category": row["category"],
                    "question_index": row["question_index"],
                    "biased_letter": row["biased_letter"],
                    "unknown_letter": row["unknown_letter"],
                    "options": list(row["options"]),
                },
            }
            for index, row in enumerate(rows)
        ]

    train = verl(list(task.train), "train")
    items = list(task.benchmark.items) if task.benchmark is not None else []
    test = verl(export_rows(items, split="dev", seed=0, dev_fraction=None), "test")
    return train, test


def _pct_rows(task: Any, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from training.grpo_eval import sample

    def verl(rows: Sequence[Mapping[str, Any]], split: str) -> list[dict[str, Any]]:
        return [
            {
                "data_source": DATA_SOURCES["pcp"],
                "prompt": list(row["prompt"]),
                "ability": ABILITIES["pcp"],
                "reward_model": {"style": "model", "ground_truth": ""},
                "extra_info": {
                    "split": split,
                    "index": index,
                    "query": row["query"],
                    "left": row["left"],
                    "right": row["right"],
                    "query_type": row["query_type"],
                },
            }
            for index, row in enumerate(rows)
        ]

    rows = list(task.train)
    return verl(rows, "train"), verl(sample(rows, PCT_TEST_ROWS, seed), "test")


def verl_command(
    out: Path, base: str, settings: Mapping[str, Any], lora: Mapping[str, Any]
) -> list[str]:
    """verl's GRPO command line for the export in `out`, with the run's recipe: the same
    prompts per GPU per optimizer step as TRL's, on `NODES` x `GPUS_PER_NODE` GPUs."""
    batch = int(settings.get("per_device_train_batch_size", 8)) * int(
        settings.get("gradient_accumulation_steps", 1)
    )
    generations = int(settings.get("num_generations") or 8)
    prompts = max(1, batch // generations) * NODES * GPUS_PER_NODE
    targets = lora.get("target_modules", "all-linear")
    if isinstance(targets, list | tuple):
        targets = "[" + ",".join(sorted(str(t) for t in targets)) + "]"
    return [
        "python", "-m", "verl.trainer.main_ppo",
        "algorithm.adv_estimator=grpo",
        f"data.train_files={out / 'train.parquet'}",
        f"data.val_files={out / 'test.parquet'}",
        f"data.train_batch_size={prompts}",
        "data.max_prompt_length=1024",
        f"data.max_response_length={settings.get('max_completion_length') or 512}",
        f"actor_rollout_ref.model.path={base}",
        f"actor_rollout_ref.model.lora_rank={lora.get('r', 16)}",
        f"actor_rollout_ref.model.lora_alpha={lora.get('lora_alpha', 32)}",
        f"actor_rollout_ref.model.target_modules={targets}",
        f"actor_rollout_ref.actor.optim.lr={settings.get('learning_rate')}",
        f"actor_rollout_ref.actor.use_kl_loss={bool(settings.get('beta'))}",
        f"actor_rollout_ref.actor.kl_loss_coef={settings.get('beta') or 0.0}",
        "actor_rollout_ref.rollout.name=vllm",
        f"actor_rollout_ref.rollout.n={generations}",
        f"actor_rollout_ref.rollout.temperature={settings.get('temperature', 1.0)}",
        f"custom_reward_function.path={out / MODULE}",
        "custom_reward_function.name=compute_score",
        f"trainer.total_epochs={int(float(settings.get('num_train_epochs') or 1))}",
        f"trainer.nnodes={NODES}",
        f"trainer.n_gpus_per_node={GPUS_PER_NODE}",
    ]  # fmt: skip


def export_verl(
    task: Any,
    out: Path,
    *,
    base: str,
    config: Any,
    db: Path,
    force: bool = False,
) -> dict[str, Any]:
    """Write the verl export of `task` (a `training.grpo.GRPOTask`) into the folder `out`
    (module docstring); returns its record. `config`: the run's `TrainConfig`."""
    import datasets

    from training.run import quiet, resolve_base

    quiet()
    grpo = config.grpo
    if task.task == "bbq":
        train, test = _bbq_rows(task)
    else:
        train, test = _pct_rows(task, int(grpo.seed))
    if not test:
        test = train[: min(len(train), PCT_TEST_ROWS)]
    settings = config.to_json()
    out = out.expanduser()
    record: dict[str, Any] = {
        "task": task.task,
        "data_source": DATA_SOURCES[task.task],
        "bias_penalty": float(grpo.bias_penalty),
        "judge": task.judge.name if task.judge is not None else None,
        "judge_models": str(Path(task.judge_models).resolve()) if task.judge_models else None,
        "db": str(db.expanduser().resolve()),
        "run_id": "verl-" + _short_hash(str(out.resolve())),
        "rows": {"train": len(train), "test": len(test)},
        "provenance": task.provenance,
        "command": verl_command(
            out.resolve(), resolve_base(base)[0], settings["grpo"], settings["lora"] or {}
        ),
    }
    with atomic_output(out, force=force, directory=True) as staged:
        staged.mkdir()
        datasets.Dataset.from_list(train).to_parquet(str(staged / "train.parquet"))
        datasets.Dataset.from_list(test).to_parquet(str(staged / "test.parquet"))
        (staged / MODULE).write_text(_MODULE_TEXT.format(task=task.task), encoding="utf-8")
        text = json.dumps(record, indent=2, default=str) + "\n"
        (staged / RECORD).write_text(text, encoding="utf-8")
    return record


def _short_hash(text: str) -> str:
    from arena.core.ids import content_id

    return content_id("verl", text, length=12)


def command_text(record: Mapping[str, Any]) -> str:
    """The verl command line of an export, for a terminal: the program on the first line, a
    setting per line after it."""
    parts = [shlex.quote(part) for part in record["command"]]
    return " \\\n    ".join([" ".join(parts[:3]), *parts[3:]])


# --- the reward verl calls ----------------------------------------------------------------------


class VerlReward:
    """The reward of an export (module docstring), built from its `arena-verl.json`."""

    def __init__(self, record: Mapping[str, Any]):
        self.record = dict(record)
        self.task = str(record["task"])
        self._lock = threading.Lock()
        self._pct: Any = None
        self._judge: Any = None
        self._store: Any = None
        from pairing.rewards import bbq_reward

        self._bbq = bbq_reward(float(record.get("bias_penalty") or 0.0))

    def __call__(
        self,
        data_source: str,
        solution_str: str,
        ground_truth: Any,
        extra_info: Mapping[str, Any] | None = None,
    ) -> float:
        info = dict(extra_info or {})
        if self.task == "bbq":
            options = info.get("options")
            [score] = self._bbq(
                [""],
                [solution_str],
                gold_letter=[ground_truth],
                biased_letter=[info.get("biased_letter")],
                **({"options": [list(options)]} if options is not None else {}),
            )
            return float(score)
        reward = self._pct_reward()
        [value] = reward(
            [info.get("query", "")],
            [solution_str],
            query=[info.get("query", "")],
            left=[info.get("left", "")],
            right=[info.get("right", "")],
            query_type=[info.get("query_type", "sentiment")],
        )
        return float(value) if value is not None else 0.0

    def _pct_reward(self) -> Any:
        with self._lock:
            if self._pct is None:
                from arena.judges.reward_client import RewardJudge
                from pairing.pcp_rewards import pct_reward, synchronous
                from storage import Store
                from training.grpo import resolve_judge

                models = self.record.get("judge_models")
                role = resolve_judge(self.record.get("judge"), Path(models) if models else None)
                self._store = Store.open(Path(self.record["db"]))
                judge = RewardJudge(
                    role,
                    self._store,
                    run_id=f"{self.record['run_id']}-judge",
                    config={"export": "verl"},
                )
                self._pct = synchronous(pct_reward(judge))
                self._judge = judge
                atexit.register(self.close)
            return self._pct

    def close(self) -> None:
        """Close the judge's backend and the database (at exit)."""
        with self._lock:
            reward, store = self._pct, self._store
            self._pct = self._store = None
        if reward is not None:
            try:
                reward.run(self._judge.aclose())
                self._judge.finish("complete")
            finally:
                reward.close()
        if store is not None:
            store.close()


_REWARDS: dict[Path, VerlReward] = {}
_REWARDS_LOCK = threading.Lock()


def reward_for(record: Path) -> VerlReward:
    """The reward of the export whose `arena-verl.json` is `record`, built once per process."""
    path = record.resolve()
    with _REWARDS_LOCK:
        reward = _REWARDS.get(path)
        if reward is None:
            reward = VerlReward(json.loads(path.read_text(encoding="utf-8")))
            _REWARDS[path] = reward
        return reward
