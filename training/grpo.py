"""`arena train grpo`: a LoRA adapter trained with GRPO on a task's prompts and rewards.

Two tasks, each with its published recipe as defaults (training/config.py
`GRPO_TASK_DEFAULTS`):

- `--task bbq --data DIR`: BBQ items (a .jsonl file or a folder of them), split by template
  (`arena.protocol.bbq.split_by_template`, the split `arena bbq run --split` uses); the train
  split is the prompts (`pairing.bbq_export`: the prompt a BBQ run asks), scored by the
  verifiable reward `pairing.rewards.bbq_reward` with `bias_penalty` (lambda). The dev split (or
  `--eval-data`) is the benchmark during training.
- `--task pcp --prompts FILE --judge NAME --models FILE`: the PCT training prompts (`arena pcp
  build-train`'s output, or the published 1,038), scored per row by its `query_type`: the
  anchored sentiment reward and the helpfulness reward (`pairing.pcp_rewards`), both judged by
  the judge `NAME` of models.yaml through the engine (`arena.judges.reward_client.RewardJudge`:
  the judge's concurrency limits, rate limits and retries; replies cached by request; every call
  a `calls` row of the run `<training run>-judge`, so the judging cost is one query). TRL awaits
  both rewards together, and each judges its batch concurrently. `--eval-pairs` (PCP topic pairs,
  `--eval-templates`) is the benchmark during training.

Read top to bottom, `train_grpo` checks the inputs (the task's data, the judge, held-out
evaluation: training/grpo_eval.py) before anything loads, then hands the rest to the run every
kind shares (training/run.py): the base, the output folder (a rerun resumes), the store, the
model, our trainer, training, the adapter. Our trainer is TRL's `GRPOTrainer` with the PEFT
`LoraConfig`, and three additions (`ArenaGRPOTrainer`):

- each optimizer step's wall time, split into generation, reward and the rest (log-probs,
  backward, optimizer: `optimisation`), logged with TRL's metrics as `time/step`,
  `time/generation`, `time/reward`, `time/optimisation` (seconds);
- at each logging step the first `store_completions` completions of the last generation batch,
  with each reward function's score, their weighted sum and the advantage, written to
  `training_completions`;
- TRL's own metrics (`reward`, `reward_std`, `rewards/<function>/mean|std`,
  `frac_reward_zero_std`, `kl`, `completions/mean_length`, ..., and the rewards' judge
  fallback shares) go to `training_metrics` like DPO's.

Generation: TRL's plain `generate` by default (the embedded model on the CPU); `use_vllm: true`
in the YAML file turns on TRL's vLLM rollouts (colocate mode by default; `vllm_mode: server`
with `trl vllm-serve`, docs/training.md).

Simplified on purpose: `--task pcp` trains in one process (the judge records through the store,
which only the first process opens); the BBQ reward needs no judge and runs anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from arena.config import JudgeRole
from arena.core.errors import ConfigError, UserError
from storage import Store
from training.config import TrainConfig
from training.grpo_eval import (
    BBQBenchmark,
    Benchmark,
    PCPBenchmark,
    benchmark_callback,
    check_bbq_held_out,
    check_pcp_held_out,
    hf_policy,
    sample,
)
from training.records import RunRecorder
from training.run import (
    RunSpec,
    TrainResult,
    last_checkpoint,
    quiet,
    refuse_unservable,
    run,
)

__all__ = ["KIND", "TASKS", "GRPOTask", "bbq_task", "pcp_task", "resolve_judge", "train_grpo"]

KIND: Final = "grpo"
TASKS: Final = ("bbq", "pcp")
RESUME_SHAPING: Final = (
    "beta",
    "num_generations",
    "temperature",
    "max_completion_length",
    "bias_penalty",
    "reward_weights",
)
"""GRPO settings a resumed run must share with the run it continues (training/run.py has the
settings of every kind)."""
TIMES: Final = ("time/step", "time/generation", "time/reward", "time/optimisation")


@dataclass
class GRPOTask:
    """What a GRPO run trains on, how it is scored, and its benchmark."""

    task: str
    data: Path
    """`--data` (BBQ) or `--prompts` (PCP): the resume check compares it."""
    train: Any
    """The training prompts: a `datasets.Dataset` in TRL's conversational prompt-only form,
    with the columns the task's rewards read."""
    provenance: dict[str, Any]
    benchmark: Benchmark | None = None
    judge: JudgeRole | None = None
    judge_models: str | None = None
    """The models file the judge came from."""
    judge_budget_usd: float | None = None
    """Stop training once the judging has cost this much (`RewardJudge`'s budget)."""


# --- the tasks' inputs --------------------------------------------------------------------------


def bbq_task(
    data: Path,
    *,
    dev_fraction: float = 0.2,
    split_seed: int = 0,
    eval_data: Path | None = None,
    eval_limit: int = 0,
    seed: int = 0,
    limit: int | None = None,
) -> GRPOTask:
    """BBQ's train split of `data` as prompts, and its dev split (or `eval_data`) as the
    benchmark, `eval_limit` items of it (0: all), checked for shared templates."""
    import datasets

    from arena.protocol.bbq import load_items, split_by_template
    from pairing.bbq_export import export_rows

    items = load_items(data)
    try:
        split = split_by_template(items, dev_fraction, split_seed)
    except ValueError as exc:
        raise UserError(f"--dev-fraction: {exc}") from None
    train = list(split.train)
    if limit is not None:
        train = sample(train, limit, seed)
    if not train:
        raise UserError(f"--data {data}: no training items are left after the dev split")
    if eval_data is not None:
        held_out = load_items(eval_data)
        check_bbq_held_out(train, held_out, "--data", "--eval-data")
    else:
        held_out = list(split.dev)
    rows = export_rows(train, split="train", seed=split_seed, dev_fraction=dev_fraction)
    evaluation = sample(held_out, eval_limit, seed)
    provenance = {
        "folder": str(data.resolve()),
        "task": "bbq",
        "items": len(train),
        "split": {"dev_fraction": dev_fraction, "seed": split_seed, "limit": limit},
        "eval": {
            "source": str((eval_data or data).resolve()),
            "split": None if eval_data is not None else "dev",
            "items": len(evaluation),
        },
    }
    return GRPOTask(
        "bbq",
        data,
        datasets.Dataset.from_list(rows),
        provenance,
        BBQBenchmark(evaluation) if evaluation else None,
    )


def resolve_judge(name: str | None, models: Path | None) -> JudgeRole:
    """The judge `name` of the models file `models` (UserError when either is missing)."""
    from arena.config.load import check_environment, remember_secrets
    from arena.config.pcp import load_judges_file

    if name is None or models is None:
        raise UserError("--task pcp needs --judge NAME and --models FILE (whose judges: has it)")
    judges = load_judges_file(models)
    known = {j.name: j for j in judges}
    if name not in known:
        listed = ", ".join(known)
        raise ConfigError(str(models), "judges", f"no judge named {name!r} (judges: {listed})")
    remember_secrets(judges)
    check_environment(judges, "judges", str(models), {name})
    return known[name]


def pcp_task(
    prompts: Path,
    judge: JudgeRole,
    *,
    models: Path | None = None,
    eval_pairs: Path | None = None,
    eval_templates: Sequence[str] | None = None,
    eval_limit: int = 0,
    seed: int = 0,
    limit: int | None = None,
    budget_usd: float | None = None,
) -> GRPOTask:
    """The PCT prompts of `prompts`, scored by `judge` (no call once the judging has cost
    `budget_usd`); the PCP items of `eval_pairs` (its templates file beside it, the
    `eval_templates` of it) as the benchmark, checked for topics the training prompts mention."""
    import datasets

    from arena.protocol.pcp import cross, load_templates, load_topic_pairs, select_templates
    from arena.protocol.pcp_train import load_train_rows

    rows = load_train_rows(prompts)
    if limit is not None:
        rows = sample(rows, limit, seed)
    benchmark: PCPBenchmark | None = None
    evaluated = 0
    if eval_pairs is not None:
        pairs = load_topic_pairs(eval_pairs)
        check_pcp_held_out(rows, pairs, "--prompts", "--eval-pairs")
        templates_file = eval_pairs.parent / "pcp_templates.json"
        templates = select_templates(
            load_templates(templates_file), eval_templates, None, "--eval-templates"
        )
        items = sample(cross(pairs, templates), eval_limit, seed)
        evaluated = len(items)
        benchmark = PCPBenchmark(items)
    dataset = datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": row.query}],
                "query": row.query,
                "left": row.left,
                "right": row.right,
                "query_type": row.query_type,
            }
            for row in rows
        ]
    )
    provenance = {
        "folder": str(prompts.resolve()),
        "task": "pcp",
        "rows": len(rows),
        "query_types": {
            kind: sum(1 for r in rows if r.query_type == kind)
            for kind in ("sentiment", "helpfulness")
        },
        "judge": judge.name,
        "judge_models": str(models.resolve()) if models is not None else None,
        "eval": None
        if eval_pairs is None
        else {
            "pairs": str(eval_pairs.resolve()),
            "templates": list(eval_templates) if eval_templates else None,
            "items": evaluated,
        },
    }
    return GRPOTask("pcp", prompts, dataset, provenance, benchmark, judge, str(models), budget_usd)


# --- the trainer --------------------------------------------------------------------------------


@dataclass
class StepClock:
    """Seconds spent generating and scoring since the step began."""

    generation: float = 0.0
    reward: float = 0.0
    started: float | None = None


def trainer_class() -> type[Any]:
    """TRL's GRPOTrainer with the step clock and the completion records (module docstring)."""
    import math

    from trl.trainer.grpo_trainer import GRPOTrainer

    class ArenaGRPOTrainer(GRPOTrainer):
        def __init__(
            self,
            *args: Any,
            recorder: RunRecorder | None = None,
            store_completions: int = 0,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self.clock = StepClock()
            self.arena_recorder = recorder
            self.store_completions = store_completions

        def _generate(self, prompts: list[Any]) -> Any:
            start = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                self.clock.generation += time.perf_counter() - start

        def _calculate_rewards(self, *args: Any) -> Any:
            start = time.perf_counter()
            try:
                return super()._calculate_rewards(*args)
            finally:
                self.clock.reward += time.perf_counter() - start

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            training = bool(getattr(self.model, "training", False))
            if training and self.arena_recorder is not None and self.store_completions:
                self.arena_recorder.completions(
                    int(self.state.global_step), "train", self.sampled_completions()
                )
            super().log(logs, start_time)

        def sampled_completions(self) -> list[dict[str, Any]]:
            from pairing.pcp_rewards import prompt_text
            from pairing.rewards import completion_text

            logs: Any = self._logs
            n = min(self.store_completions, len(logs["prompt"]))
            weights = [float(w) for w in self.reward_weights.tolist()]
            names = list(self.reward_func_names)
            rows: list[dict[str, Any]] = []
            for i in range(n):
                # float32 rewards, kept to float32's precision (-0.1, not -0.10000000149)
                scores = {name: float(f"{logs['rewards'][name][i]:.7g}") for name in names}
                applied = [
                    w * v
                    for w, v in zip(weights, scores.values(), strict=True)
                    if not math.isnan(v)
                ]
                rows.append(
                    {
                        "prompt": prompt_text(logs["prompt"][i]),
                        "completion": completion_text(logs["completion"][i]),
                        "reward": sum(applied) if applied else None,
                        "rewards": {k: (None if math.isnan(v) else v) for k, v in scores.items()},
                        "advantage": float(f"{logs['advantages'][i]:.7g}"),
                    }
                )
            return rows

    return ArenaGRPOTrainer


def step_timer(trainer: Any) -> Any:
    """A callback that times each optimizer step and hands the split to TRL's metrics."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock: StepClock = trainer.clock
            clock.generation = clock.reward = 0.0
            clock.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock: StepClock = trainer.clock
            if clock.started is None:
                return
            step = time.perf_counter() - clock.started
            metrics = trainer._metrics["train"]
            values = (step, clock.generation, clock.reward, step - clock.generation - clock.reward)
            for name, value in zip(TIMES, values, strict=True):
                metrics[name].append(value)
            clock.started = None

    return StepTimer()


# --- the run ------------------------------------------------------------------------------------


@dataclass
class _Attached:
    """What the trainer needs of the store, set while the run holds it."""

    recorder: RunRecorder | None = None
    judge: Any = None
    """The reward judge (`RewardJudge`), for the PCP task."""
    trainer: Any = None


def train_grpo(
    task: GRPOTask,
    base: str,
    out: Path,
    db: Path,
    config: TrainConfig,
    *,
    command: str | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> TrainResult:
    """Train a GRPO LoRA adapter on `task` into `out`, recorded in `db` (module docstring).

    Raises UserError on a mistake in the inputs."""
    refuse_unservable(config)
    quiet()
    grpo = config.grpo
    if grpo.eval_every and task.benchmark is None:
        flag = "--eval-pairs" if task.task == "pcp" else "--data's dev split (or --eval-data)"
        raise UserError(f"--eval-every {grpo.eval_every}: nothing to evaluate on; give {flag}")
    attached = _Attached()

    @contextlib.contextmanager
    def attach(store: Store | None, recorder: RunRecorder | None) -> Iterator[None]:
        attached.recorder = recorder
        if task.judge is None:
            yield
            return
        if store is None or recorder is None:
            raise UserError("--task pcp trains in one process (its judge records to the store)")
        from arena.judges.reward_client import RewardJudge

        judge = RewardJudge(
            task.judge,
            store,
            run_id=f"{recorder.run_id}-judge",
            config={"training_run": recorder.run_id, "models": task.judge_models},
            command=command,
            budget_usd=task.judge_budget_usd,
        )
        attached.judge = judge
        failed = True
        try:
            yield
            failed = False
        finally:
            loop = getattr(attached.trainer, "async_loop", None)
            with contextlib.suppress(Exception):
                if loop is not None:
                    asyncio.run_coroutine_threadsafe(judge.aclose(), loop).result(timeout=30)
            judge.finish("interrupted" if failed else "complete")

    def build(model: Any, tokenizer: Any, extra: list[Any]) -> Any:
        from pairing.pcp_rewards import anchored_sentiment_reward, helpfulness_reward
        from pairing.rewards import bbq_reward

        rewards: list[Any]
        if task.task == "bbq":
            rewards = [bbq_reward(grpo.bias_penalty)]
        else:
            rewards = [
                anchored_sentiment_reward(attached.judge),
                helpfulness_reward(attached.judge),
            ]
        trainer = trainer_class()(
            model=model,
            reward_funcs=rewards,
            args=grpo,
            train_dataset=task.train,
            processing_class=tokenizer,
            peft_config=config.lora,
            callbacks=[],
            recorder=attached.recorder,
            store_completions=grpo.store_completions,
        )
        attached.trainer = trainer
        trainer.add_callback(step_timer(trainer))
        if grpo.eval_every and task.benchmark is not None:
            trainer.add_callback(_benchmark(task.benchmark, trainer, tokenizer, config, attached))
        for callback in extra:
            trainer.add_callback(callback)
        return trainer

    spec = RunSpec(
        kind=KIND,
        data=task.data,
        provenance=task.provenance,
        held_out=None,
        reply="",
        build=build,
        shaping=RESUME_SHAPING,
        attach=attach,
    )
    return run(spec, base, out, db, config, command=command, callbacks=callbacks, progress=progress)


def _benchmark(
    benchmark: Benchmark, trainer: Any, tokenizer: Any, config: TrainConfig, attached: _Attached
) -> Any:
    grpo = config.grpo
    if isinstance(benchmark, PCPBenchmark):
        loop = trainer.async_loop
        benchmark.judge = attached.judge
        benchmark.run = lambda coroutine: asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def record(
        step: int, name: str, scores: Mapping[str, float], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        recorder = attached.recorder
        if recorder is not None:
            recorder.metrics(step, {f"eval_{name}/{k}": v for k, v in scores.items()})
            recorder.completions(step, "eval", rows)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    def policy() -> Any:
        return hf_policy(
            trainer,
            tokenizer,
            grpo.eval_max_tokens,
            grpo.per_device_eval_batch_size,
            grpo.chat_template_kwargs,
        )

    resumed = last_checkpoint(Path(grpo.output_dir or ".")) is not None
    return benchmark_callback(benchmark, grpo.eval_every, policy, record, warn, resumed=resumed)
