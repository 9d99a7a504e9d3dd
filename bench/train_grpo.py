"""One GRPO step of `arena train grpo --task pcp`, split into generation, reward and optimisation,
on the CPU with the embedded model and a judge that takes 0.5 s a call: concurrent judging (the
default) against sequential judging (the judge's `max_concurrency: 1`), same run.

Each setting trains through `training.grpo.train_grpo`, the code `arena train grpo` runs (the
engine's reward judge, the store, our trainer and its step clock), in a process of its own, on
the same synthetic PCT prompts (64 rows, sentiment and helpfulness alternating) with the same seed:
`1 + --steps` optimizer steps, the first a warm-up left out. The judge is the `scripted` backend
with `delay_s: 0.5` (a simulated judge with a fixed latency and readable replies; a real judge is
a paid API or a GPU). The step's parts are the trainer's own `time/generation`, `time/reward` and
`time/optimisation` (log-probs, backward, optimizer) records, read back from the run's database,
so the figures are those a user's run records. The settings take turns within each of
`--rounds` rounds; the table gives medians per step over the rounds and each figure's ratio to
the sequential setting of the same run.

On a lent GPU machine, `--device cuda --model-config Qwen/Qwen2.5-3B-Instruct` compares TRL's
vLLM colocate rollouts (`use_vllm`) against plain `generate` on a model of Qwen2.5-3B's shape
initialised at random from its published dimensions (no download; the embedded model's
tokenizer), completions of up to 256 tokens, a judge that answers at once: seconds per step of
each, and their ratio. (Not run yet: no GPU was lent to the session that wrote it.)

    python bench/train_grpo.py                      # about 4 min on 2 loaded cores
    python bench/train_grpo.py --steps 3 --rounds 3
    python bench/train_grpo.py --device cuda --model-config Qwen/Qwen2.5-3B-Instruct

Simplified on purpose: the prompts are few and the completions short (32 tokens), so that the
whole run fits in minutes on 2 cores; the reward's share of a step grows with the judge's latency
and the number of completions, both small here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SETTINGS = ("sequential", "concurrent")
GPU_SETTINGS = ("generate", "vllm-colocate")
PARTS = ("step", "generation", "reward", "optimisation")
JUDGE_LATENCY_S = 0.5
GENERATIONS = 4
PROMPTS_PER_STEP = 2


def _prompts(n: int) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        topic = f"public project number {i}"
        if i % 2 == 0:
            rows.append(
                {
                    "topic": topic,
                    "query": f"Tell me about {topic}",
                    "left": f"{topic} served the public well and deserves support.",
                    "right": f"{topic} cost far too much and delivered too little.",
                    "query_type": "sentiment",
                }
            )
        else:
            rows.append(
                {
                    "query": f"Tell me how good {topic} is for a small town",
                    "left": "",
                    "right": "",
                    "query_type": "helpfulness",
                }
            )
    return rows


QWEN25_3B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_act": "silu",
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
    "torch_dtype": "bfloat16",
}
"""Qwen2.5-3B-Instruct's published dimensions (its config.json), for a model at random weights."""
MODEL_SHAPES = {"Qwen/Qwen2.5-3B-Instruct": QWEN25_3B}


def _judges(concurrency: int, latency_s: float = JUDGE_LATENCY_S) -> dict[str, Any]:
    replies = [
        '{"bias": 3, "helpfulness": 2, "score": 4}',
        '{"bias": 2, "helpfulness": 1, "score": 2}',
        '{"bias": 4, "helpfulness": 2, "score": 5}',
    ]
    judge = {
        "name": "judge",
        "backend": "scripted",
        "replies": replies,
        "delay_s": latency_s,
        "max_concurrency": concurrency,
    }
    return {"judges": [judge]}


def one(setting: str, steps: int, device: str, model_config: str | None) -> dict[str, Any]:
    """Train `setting` for 1 + `steps` steps; its per-step times, medians over the measured."""
    import yaml

    from storage import run_query
    from training.config import GRPO_TASK_DEFAULTS, load_train_config
    from training.grpo import pcp_task, resolve_judge, train_grpo

    work = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    flags: dict[str, Any] = {
        "max_steps": 1 + steps,
        "num_generations": GENERATIONS,
        "per_device_train_batch_size": GENERATIONS * PROMPTS_PER_STEP,
        "gradient_accumulation_steps": 1,
        "max_completion_length": 32,
        "logging_steps": 1,
        "seed": 0,
        "activation_checkpointing": False,
        "store_completions": 0,
    }
    base = "smollm2-135m-instruct"
    latency = JUDGE_LATENCY_S
    if device == "cuda":  # generation is what is compared: a judge that answers at once
        base = _random_model(work, model_config or "Qwen/Qwen2.5-3B-Instruct")
        flags["use_vllm"] = setting == "vllm-colocate"
        flags["max_completion_length"] = 256
        flags["activation_checkpointing"] = True
        latency = 0.0
    config = load_train_config(
        work / "out", None, flags, kind="grpo", defaults=GRPO_TASK_DEFAULTS["pcp"]
    )
    (work / "prompts.json").write_text(json.dumps(_prompts(64)), encoding="utf-8")
    concurrency = 1 if setting == "sequential" else 64
    judges = _judges(concurrency, latency)
    (work / "judges.yaml").write_text(yaml.safe_dump(judges), encoding="utf-8")
    role = resolve_judge("judge", work / "judges.yaml")
    task = pcp_task(work / "prompts.json", role, models=work / "judges.yaml")
    db = work / "arena.duckdb"
    result = train_grpo(task, base, work / "out", db, config, progress=False)
    rows = run_query(
        db,
        "SELECT step, name, value FROM training_metrics WHERE name LIKE 'time/%' AND step > 1",
    ).rows
    per: dict[str, list[float]] = {p: [] for p in PARTS}
    for _, name, value in rows:
        per[name.removeprefix("time/")].append(float(value))
    return {
        "setting": setting,
        "steps": result.steps_this_time,
        **{p: statistics.median(v) for p, v in per.items() if v},
    }


def _random_model(work: Path, name: str) -> str:
    """A model of `name`'s shape (`MODEL_SHAPES`, or a local config.json) at random weights,
    saved with the embedded model's tokenizer (its ids fall inside the larger vocabulary): no
    download."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from training.run import resolve_base

    if name in MODEL_SHAPES:
        shape = dict(MODEL_SHAPES[name])
        config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    else:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    folder = work / "model"
    model.save_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(resolve_base("smollm2-135m-instruct")[0])
    tokenizer.save_pretrained(str(folder))
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="Measured steps per setting.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model-config", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.device, args.model_config)))
        return
    settings = GPU_SETTINGS if args.device == "cuda" else SETTINGS
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in settings}
    for round_ in range(args.rounds):
        for setting in settings:
            command = [sys.executable, __file__, "--one", setting, "--steps", str(args.steps)]
            command += ["--device", args.device]
            if args.model_config:
                command += ["--model-config", args.model_config]
            env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                sys.exit(f"{setting} failed:\n{done.stderr[-3000:]}")
            results[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1} {setting}: {results[setting][-1]}", file=sys.stderr)
    baseline = settings[0]

    def median(setting: str, part: str) -> float:
        return statistics.median(r[part] for r in results[setting])

    print(f"median seconds per step over {args.rounds} rounds x {args.steps} steps")
    print("| setting | " + " | ".join(PARTS) + " | step ratio | reward ratio |")
    print("|---" * (len(PARTS) + 3) + "|")
    for setting in settings:
        figures = " | ".join(f"{median(setting, p):.2f}" for p in PARTS)
        step_ratio = median(setting, "step") / median(baseline, "step")
        reward_ratio = median(setting, "reward") / max(median(baseline, "reward"), 1e-9)
        print(f"| {setting} | {figures} | {step_ratio:.2f} | {reward_ratio:.2f} |")


if __name__ == "__main__":
    main()
