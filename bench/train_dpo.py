"""DPO training on the CPU: tokens/s of TRL's defaults against our settings, same run.

A fixed synthetic preference dataset shaped like debate turns (TRL's conversational format, as
`arena pairs --format hf` writes it: the debate's real system prompt and turn instruction from
`pairing.prompts`, the opponent's last turn in the user message, prompts of 150-400 tokens in all
with the chat template, chosen and rejected replies of 100-250 tokens, made of seeded pseudo-words
cut to those token counts) is trained on with TRL's `DPOTrainer` and a PEFT LoRA (our
`ArenaLoraConfig` for every setting, so that only the DPO settings differ) on the embedded model
(`smollm2-135m-instruct`, resolved as `arena train dpo --base` resolves it), one setting at a time:

- `trl`: TRL's defaults, a plain `DPOConfig` with only what running on the CPU needs (no bf16,
  which TRL turns on everywhere and which refuses to start on a CPU), the batch size and the steps;
- `ours`: our `ArenaDPOConfig` defaults (training/config.py);
- `no-ckpt`: ours with activation checkpointing off;
- `precompute`: ours with `precompute_ref_log_probs` (TRL computes the reference log-probs of the
  whole dataset once, with the adapter disabled, when the trainer is built; the steps then skip
  the reference forward). Its precompute time is reported beside it, and a second rate charges it
  to the steps measured;
- `max-len-N`: ours truncated to `--max-length` tokens a sequence (fewer tokens trained per pair).

Each setting runs in a process of its own (so each has its own peak RSS and nothing cached is
shared, not even TRL's cache of precomputed log-probs): the model is loaded, the trainer built,
and `1 + --steps` optimizer steps trained on exactly that many batches; the first step is a
warm-up, and the clock and the token count run from its end to the end of the last step (a
`TrainerCallback`). Tokens are TRL's own count of training tokens (the non-padding tokens of the
chosen and rejected sequences, prompt included), the figure `arena train dpo` reports. The
settings take turns within each of `--rounds` rounds (trl ours no-ckpt ... trl ours ...), so that
the load of other work on the shared machine hits them alike; the table gives medians over the
rounds and each setting's ratio to TRL's defaults in the same run.

On a lent GPU machine, `--device cuda --model-config Qwen/Qwen3-4B` trains the same settings on a
model of Qwen3-4B's shape initialised at random from a config written here (no download; the
embedded model's tokenizer, whose ids all fall inside Qwen3's larger vocabulary), in bfloat16;
`--liger` adds `ours` with Liger kernels (`use_liger_kernel`, which needs the `liger-kernel`
package; refused with one line when it is missing).

    python bench/train_dpo.py                     # about 5 min on 2 loaded cores
    python bench/train_dpo.py --steps 3 --rounds 3 --batch-size 4
    python bench/train_dpo.py --device cuda --model-config Qwen/Qwen3-4B --liger --batch-size 8

Simplified on purpose: TRL's padding-free batches and packing are not among the settings: this TRL
(1.16) turns `padding_free=True` back off with a warning ("temporarily unavailable after a
refactor") and its DPO has no packing, so both would measure plain padding again. Steps are few
and the batch small, so that the whole run fits in minutes on 2 cores; the first step of each
process is left out as a warm-up, but learning-rate warm-up and the scheduler are as configured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = "smollm2-135m-instruct"

QWEN3_4B: dict[str, Any] = {
    "model_type": "qwen3",
    "architectures": ["Qwen3ForCausalLM"],
    "vocab_size": 151936,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "attention_dropout": 0.0,
}
"""Qwen3-4B's published dimensions (its config.json), for a model initialised at random."""
MODEL_SHAPES = {"Qwen/Qwen3-4B": QWEN3_4B}

MOTIONS = (
    "This house would ban private cars from city centres",
    "This house believes that social media does more harm than good",
    "This house would make voting compulsory",
    "This house would abolish university tuition fees",
    "This house believes that nuclear power is essential to fight climate change",
    "This house would tax sugary drinks",
)
SYLLABLES = ("po", "li", "cy", "re", "form", "vot", "er", "tax", "mar", "ket", "court", "ev", "id")
VOCABULARY = (
    "the evidence shows that voters and markets respond to policy when courts and budgets allow "
    "reform but costs fall on families cities and workers while rights and duties must be weighed "
    "against growth health safety freedom fairness and the long term interest of everyone"
)
WORDS = VOCABULARY.split()


# --- the data -----------------------------------------------------------------------------------


def _words(rng: random.Random, n: int) -> str:
    """`n` words, mostly English, some made-up, with sentence breaks."""
    out: list[str] = []
    for i in range(n):
        word = (
            rng.choice(WORDS)
            if rng.random() < 0.8
            else "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        )
        out.append(word.capitalize() if i == 0 or out[-1].endswith(".") else word)
        if rng.random() < 0.08:
            out[-1] += "."
    return " ".join(out) + "."


def _cut(tokenizer: Any, text: str, tokens: int) -> str:
    """`text` cut to its first `tokens` tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]
    return str(tokenizer.decode(ids))


def preference_rows(tokenizer: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """`n` pairs in TRL's conversational format, prompts of 150-400 tokens (chat template
    included) and replies of 100-250, the same for a given seed and tokenizer."""
    from pairing.prompts import prompt_messages

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        motion = MOTIONS[i % len(MOTIONS)]
        turn = 2 + i % 3
        messages = prompt_messages(motion, "AGAINST" if turn % 2 else "FOR", turn, 4, 256)
        head = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        room = rng.randint(150, 400) - len(head["input_ids"]) - 8
        if room > 0:
            said = _cut(tokenizer, _words(rng, room * 2), room)
            messages[-1]["content"] = f"Your opponent said:\n{said}\n\n{messages[-1]['content']}"
        chosen = _cut(tokenizer, _words(rng, 600), rng.randint(100, 250))
        rejected = _cut(tokenizer, _words(rng, 600), rng.randint(100, 250))
        rows.append(
            {
                "prompt": messages,
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return rows


# --- the settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One configuration of the trainer."""

    name: str
    label: str
    trl_defaults: bool = False
    """A plain `DPOConfig` (else our `ArenaDPOConfig`)."""
    overrides: dict[str, Any] = field(default_factory=dict)


def settings(args: argparse.Namespace) -> list[Setting]:
    """The settings compared, the baseline first."""
    out = [
        Setting("trl", "TRL defaults (DPOConfig)", trl_defaults=True),
        Setting("ours", "ours (ArenaDPOConfig)"),
        Setting(
            "no-ckpt",
            "ours, activation checkpointing off",
            overrides={"activation_checkpointing": False},
        ),
        Setting(
            "precompute",
            "ours, precomputed reference log-probs",
            overrides={"precompute_ref_log_probs": True},
        ),
        Setting(
            f"max-len-{args.max_length}",
            f"ours, max_length {args.max_length}",
            overrides={"max_length": args.max_length},
        ),
    ]
    if args.liger:
        out.append(
            Setting("ours-liger", "ours, Liger kernels", overrides={"use_liger_kernel": True})
        )
    return out


def check_args(args: argparse.Namespace) -> None:
    """UserError on an option that cannot work here, before anything is loaded."""
    for name in ("steps", "rounds", "batch_size", "max_length"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no GPU on this machine")
    if args.liger and importlib.util.find_spec("liger_kernel") is None:
        raise UserError("--liger needs the liger-kernel package (pip install liger-kernel)")
    if args.model_config is not None and args.model_config not in MODEL_SHAPES:
        path = Path(args.model_config)
        if not (path / "config.json").is_file() and not path.is_file():
            raise UserError(
                f"--model-config {args.model_config}: neither a known shape "
                f"({', '.join(MODEL_SHAPES)}) nor a config.json or a folder holding one"
            )


# --- one setting, in its own process ------------------------------------------------------------


def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """The tokenizer and the model to train: the embedded model, or a random one of the shape of
    `--model-config` (bfloat16 on a GPU, float32 on the CPU)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from training.dpo import resolve_base

    path, local = resolve_base(EMBEDDED)
    tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=local)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    gpu = args.device == "cuda"
    dtype = torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
    if args.model_config is None:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=local)
        return tokenizer, model
    if args.model_config in MODEL_SHAPES:
        shape = dict(MODEL_SHAPES[args.model_config])
        config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    else:
        config = AutoConfig.from_pretrained(args.model_config, local_files_only=True)
    torch.manual_seed(0)
    if gpu:
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    else:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    return tokenizer, model


def trainer_args(setting: Setting, args: argparse.Namespace, out: str) -> Any:
    """The DPOConfig (TRL's or ours) of `setting`."""
    from trl.trainer.dpo_config import DPOConfig

    from training.config import ArenaDPOConfig

    common: dict[str, Any] = {
        "output_dir": out,
        "max_steps": 1 + args.steps,
        "per_device_train_batch_size": args.batch_size,
        "save_strategy": "no",
        "disable_tqdm": True,
        "use_cpu": args.device == "cpu",
    }
    if setting.trl_defaults:
        if args.device == "cpu":
            common["bf16"] = False
        return DPOConfig(**common)
    return ArenaDPOConfig(**common, **setting.overrides)


def run_setting(setting: Setting, args: argparse.Namespace) -> dict[str, Any]:
    """Train `setting` for 1 + `--steps` steps; its figures as a dict."""
    import datasets
    import torch
    from transformers import TrainerCallback
    from trl.trainer.dpo_trainer import DPOTrainer

    from training.config import ArenaLoraConfig
    from training.dpo import _quiet

    _quiet()
    tokenizer, model = load_model(args)
    pairs = (1 + args.steps) * args.batch_size
    dataset = datasets.Dataset.from_list(preference_rows(tokenizer, pairs, args.seed))
    gpu = args.device == "cuda"
    marks: list[tuple[float, int]] = []
    precompute: list[float] = []
    holder: dict[str, Any] = {}

    class StepClock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            if gpu:
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), int(holder["trainer"]._total_train_tokens)))

    class TimedTrainer(DPOTrainer):
        """DPOTrainer timing its precompute of the reference log-probs (a private method of
        TRL's: when it is renamed, the precompute time is reported as unknown)."""

        def _precompute_ref_logps(self, *a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            result = super()._precompute_ref_logps(*a, **k)
            precompute.append(time.perf_counter() - started)
            return result

    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as out:
        config = trainer_args(setting, args, out)
        started = time.perf_counter()
        trainer = TimedTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=ArenaLoraConfig(),
            callbacks=[StepClock()],
        )
        setup_s = time.perf_counter() - started
        if not hasattr(trainer, "_total_train_tokens"):
            raise SystemExit("this TRL's DPOTrainer has no _total_train_tokens to count tokens")
        holder["trainer"] = trainer
        trainer.train()
    if len(marks) != 1 + args.steps:
        raise SystemExit(f"{setting.name}: trained {len(marks)} steps, expected {1 + args.steps}")
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    return {
        "setting": setting.name,
        "seconds": t1 - t0,
        "tokens": n1 - n0,
        "pairs": args.steps * args.batch_size,
        "warmup_s": t0 - started - setup_s,
        "setup_s": setup_s,
        "precompute_s": sum(precompute) if precompute else None,
        "checkpointing": bool(config.gradient_checkpointing),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
    }


# --- the rounds ---------------------------------------------------------------------------------


def worker_command(setting: Setting, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", setting.name]
    for name in ("steps", "batch_size", "max_length", "device", "seed"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.model_config is not None:
        command += ["--model-config", args.model_config]
    if args.liger:
        command.append("--liger")
    return command


def run_in_process(setting: Setting, args: argparse.Namespace) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    started = time.perf_counter()
    done = subprocess.run(
        worker_command(setting, args), capture_output=True, text=True, env=env, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"setting {setting.name} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def report(
    order: list[Setting], results: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> None:
    base = _median([r["tokens"] / r["seconds"] for r in results[order[0].name]])
    print()
    model = args.model_config or EMBEDDED
    print(
        f"medians of {args.rounds} round(s), {args.steps} step(s) of {args.batch_size} pair(s) "
        f"after a warm-up step each, {model} on the {args.device}"
    )
    header = (
        "| setting | tokens/s | x TRL defaults | pairs/s | s/step | tokens/step | setup s | "
        "peak RSS MB |"
    )
    if args.device == "cuda":
        header += " peak GPU MB |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for setting in order:
        runs = results[setting.name]
        rate = _median([r["tokens"] / r["seconds"] for r in runs])
        row = (
            f"| {setting.label} | {rate:,.0f} | {rate / base:.2f} | "
            f"{_median([r['pairs'] / r['seconds'] for r in runs]):.2f} | "
            f"{_median([r['seconds'] / args.steps for r in runs]):.1f} | "
            f"{_median([r['tokens'] / args.steps for r in runs]):,.0f} | "
            f"{_median([r['setup_s'] for r in runs]):.1f} | "
            f"{_median([r['peak_rss_mb'] for r in runs]):,.0f} |"
        )
        if args.device == "cuda":
            row += f" {_median([r['peak_gpu_mb'] for r in runs]):,.0f} |"
        print(row)
    for setting in order:
        runs = results[setting.name]
        times = [r["precompute_s"] for r in runs if r["precompute_s"] is not None]
        if not setting.overrides.get("precompute_ref_log_probs"):
            continue
        if not times:
            print(f"{setting.name}: the precompute time could not be read (TRL renamed it?)")
            continue
        # the precompute covered every pair of the run: charge the measured steps their share
        share = args.steps / (1 + args.steps)
        charged = _median([r["tokens"] / (r["seconds"] + r["precompute_s"] * share) for r in runs])
        print(
            f"{setting.name}: precompute {_median(times):.1f} s for "
            f"{(1 + args.steps) * args.batch_size} pairs; charged to the steps, {charged:,.0f} "
            f"tokens/s = {charged / base:.2f}x TRL defaults"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=1, help="optimizer steps timed, after one warm-up step"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of all settings, interleaved")
    parser.add_argument("--batch-size", type=int, default=1, help="pairs a step, every setting")
    parser.add_argument(
        "--max-length", type=int, default=384, help="the truncated setting's max_length (tokens)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--model-config",
        default=None,
        help=f"train a random model of this shape ({', '.join(MODEL_SHAPES)}, or a config.json) "
        "instead of the embedded model",
    )
    parser.add_argument("--liger", action="store_true", help="add ours with Liger kernels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic pairs")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        check_args(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    order = settings(args)
    if args.worker is not None:
        setting = next(s for s in order if s.name == args.worker)
        print(json.dumps(run_setting(setting, args)))
        return
    results: dict[str, list[dict[str, Any]]] = {s.name: [] for s in order}
    for round_ in range(1, args.rounds + 1):
        for setting in order:
            result = run_in_process(setting, args)
            results[setting.name].append(result)
            print(
                f"round {round_} {setting.name:>12}: {result['tokens']:,} tokens in "
                f"{result['seconds']:6.1f} s = {result['tokens'] / result['seconds']:7.1f} tokens/s"
                f" (setup {result['setup_s']:.1f} s, warm-up step {result['warmup_s']:.1f} s, "
                f"process {result['process_s']:.0f} s, load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    report(order, results, args)


if __name__ == "__main__":
    main()
