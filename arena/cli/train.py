"""`arena train`: LoRA adapters trained on what the arena recorded (`training`).

- `dpo`: DPO on the preference pairs of `arena pairs --format hf` (training/dpo.py), with
  PERSUADE's hyperparameters as defaults; defaults < `--config` YAML < flags
  (training/config.py). The adapter, its checkpoints and its `arena.json` go to `--out`; the run
  and its metrics to `--db`. Rerunning the same command resumes from the last checkpoint.
- `sft`: supervised fine-tuning on the demonstrations of `arena pairs --mode sft --format hf`
  (training/sft.py): a LoRA adapter by default, every weight with `--full`; the same settings,
  store and adapter rules. Its output can be the `--base` of `arena train dpo`.

Exit codes: 0 an adapter was written (also when the perplexity safety stop ended the run early:
the last checkpoint under the bound is the adapter, and a line says so); 1 the safety stop ended
the run before any checkpoint passed its check (no adapter); 2 a mistake in the input (one
`error:` line: a misspelt YAML key names file:line, a missing `train` extra names the extra to
install); 4 the store could not be written; 130 stopped by Ctrl-C or a stop signal (rerun to
resume).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from arena.cli.common import DB_OPTION, fail, interruptible, reported

app = typer.Typer(
    help="Train LoRA adapters on recorded debates (needs the train extra).",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Train LoRA adapters on recorded debates (needs the train extra)."""


FLAGS = {
    "max_steps": "--max-steps",
    "learning_rate": "--learning-rate",
    "per_device_train_batch_size": "--batch-size",
    "gradient_accumulation_steps": "--grad-accum",
    "num_train_epochs": "--epochs",
    "max_length": "--max-length",
    "logging_steps": "--logging-steps",
    "seed": "--seed",
    "ppl_bound": "--ppl-bound",
    "ppl_every": "--ppl-every",
    "lora.r": "--lora-r",
    "lora.lora_alpha": "--lora-alpha",
    "lora.lora_dropout": "--lora-dropout",
}
"""The setting each flag of `arena train dpo | sft` sets (the rest come from --config)."""
DPO_FLAGS = {**FLAGS, "beta": "--beta"}
"""`arena train dpo`'s flags: the shared ones and DPO's beta."""


@app.command()
def dpo(
    pairs: Path = typer.Option(
        ..., "--pairs", help="The pairs folder written by arena pairs --format hf."
    ),
    base: str = typer.Option(
        ...,
        "--base",
        help="The model to adapt: a hub id, a local model folder, or smollm2-135m-instruct.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="The adapter folder (checkpoints inside; rerun to resume)."
    ),
    db: Path = DB_OPTION,
    config: Path | None = typer.Option(
        None, "--config", help="A YAML file of settings (DPOConfig names; a lora: section)."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Stop after this many optimizer steps (default: 1 epoch)."
    ),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Default 5e-6."),
    beta: float | None = typer.Option(None, "--beta", help="DPO's beta. Default 0.2."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Pairs per device per step. Default 8."
    ),
    grad_accum: int | None = typer.Option(
        None, "--grad-accum", help="Gradient accumulation steps. Default 1."
    ),
    epochs: float | None = typer.Option(None, "--epochs", help="Default 1."),
    max_length: int | None = typer.Option(
        None, "--max-length", help="Tokens of prompt + reply kept. Default 1024."
    ),
    logging_steps: int | None = typer.Option(
        None, "--logging-steps", help="Record metrics every N steps. Default 10."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Default 42."),
    ppl_bound: float | None = typer.Option(
        None, "--ppl-bound", help="Safety stop: held-out perplexity bound. Default 10."
    ),
    ppl_every: int | None = typer.Option(
        None, "--ppl-every", help="Check the perplexity every N steps (0: never). Default 100."
    ),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank. Default 16."),
    lora_alpha: int | None = typer.Option(None, "--lora-alpha", help="Default 32."),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout", help="Default 0.05."),
) -> None:
    """DPO LoRA training on preference pairs, with PERSUADE's hyperparameters as defaults."""
    flags: dict[str, Any] = {
        "max_steps": max_steps,
        "learning_rate": learning_rate,
        "beta": beta,
        "per_device_train_batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "num_train_epochs": epochs,
        "max_length": max_length,
        "logging_steps": logging_steps,
        "seed": seed,
        "ppl_bound": ppl_bound,
        "ppl_every": ppl_every,
        "lora.r": lora_r,
        "lora.lora_alpha": lora_alpha,
        "lora.lora_dropout": lora_dropout,
    }

    _train("dpo", pairs, base, out, db, config, flags)


def _train(
    kind: str,
    data: Path,
    base: str,
    out: Path,
    db: Path,
    config: Path | None,
    flags: dict[str, Any],
    full: bool = False,
) -> None:
    """Load the settings (defaults < --config < flags), train, and report."""

    def stopped(name: str) -> str:
        return (
            f"interrupted by {name}: rerun the same command to resume from the last checkpoint "
            f"in {out}"
        )

    with reported():
        from training.deps import require_train_extra

        require_train_extra()
        from training.config import load_train_config

        names = DPO_FLAGS if kind == "dpo" else FLAGS
        settings = load_train_config(out, config, flags, names, kind=kind, full=full)
        command = shlex.join(["arena", *sys.argv[1:]])
        with interruptible(stopped):
            if kind == "dpo":
                from training.dpo import train_dpo

                result = train_dpo(data, base, out, db, settings, command=command)
            else:
                from training.sft import train_sft

                result = train_sft(data, base, out, db, settings, command=command)
    _report(result, base, out, db)


@app.command()
def sft(
    data: Path = typer.Option(
        ...,
        "--data",
        help="The folder of arena pairs --mode sft --format hf.",
    ),
    base: str = typer.Option(
        ...,
        "--base",
        help="The model to fine-tune: a hub id, a local model folder, or smollm2-135m-instruct.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="The adapter (or, with --full, model) folder; rerun to resume."
    ),
    db: Path = DB_OPTION,
    config: Path | None = typer.Option(
        None, "--config", help="A YAML file of settings (SFTConfig names; a lora: section)."
    ),
    full: bool = typer.Option(
        False, "--full", help="Train every weight (no LoRA): the output is a whole model."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Stop after this many optimizer steps (default: 1 epoch)."
    ),
    learning_rate: float | None = typer.Option(
        None, "--learning-rate", help="Default 2e-4 with LoRA, 2e-5 with --full."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Demonstrations per device per step. Default 8."
    ),
    grad_accum: int | None = typer.Option(
        None, "--grad-accum", help="Gradient accumulation steps. Default 1."
    ),
    epochs: float | None = typer.Option(None, "--epochs", help="Default 1."),
    max_length: int | None = typer.Option(
        None, "--max-length", help="Tokens of prompt + reply kept. Default 1024."
    ),
    logging_steps: int | None = typer.Option(
        None, "--logging-steps", help="Record metrics every N steps. Default 10."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Default 42."),
    ppl_bound: float | None = typer.Option(
        None, "--ppl-bound", help="Safety stop: held-out perplexity bound. Default 10."
    ),
    ppl_every: int | None = typer.Option(
        None, "--ppl-every", help="Check the perplexity every N steps (0: never). Default 100."
    ),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank. Default 16."),
    lora_alpha: int | None = typer.Option(None, "--lora-alpha", help="Default 32."),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout", help="Default 0.05."),
) -> None:
    """Supervised fine-tuning on the winners' turns (arena pairs --mode sft), LoRA or --full."""
    flags: dict[str, Any] = {
        "max_steps": max_steps,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "num_train_epochs": epochs,
        "max_length": max_length,
        "logging_steps": logging_steps,
        "seed": seed,
        "ppl_bound": ppl_bound,
        "ppl_every": ppl_every,
        "lora.r": lora_r,
        "lora.lora_alpha": lora_alpha,
        "lora.lora_dropout": lora_dropout,
    }
    _train("sft", data, base, out, db, config, flags, full=full)


def _report(result: Any, base: str, out: Path, db: Path) -> None:
    """What the run did, where the adapter is, and how to serve it."""
    rate = result.steps_this_time / result.seconds if result.seconds > 0 else 0.0
    tokens = f", {result.tokens_per_second:,.0f} tokens/s" if result.tokens_per_second else ""
    typer.echo(
        f"trained {result.steps_this_time} steps (step {result.steps} in all) in "
        f"{result.seconds:.1f} s ({rate:.2f} steps/s{tokens}); run {result.run_id} recorded in "
        f"{db}"
    )
    if result.status == "stopped":
        typer.echo(f"safety stop: {result.stop_reason}", err=True)
    if result.adapter_step is None:
        fail(f"no adapter was kept in {out}: {result.stop_reason}", code=1)
    what = "model" if result.full else "adapter"
    typer.echo(f"{what} (step {result.adapter_step}) in {out}")
    if result.full:
        typer.echo(f"serve it: vllm serve {out}")
    for problem in result.vllm_problems:
        typer.echo(f"warning: vLLM could not serve it: {problem}", err=True)
    if not result.vllm_problems and result.max_lora_rank is not None:
        typer.echo(
            f"serve it: vllm serve {result.base_model or base} --enable-lora "
            f"--max-lora-rank {result.max_lora_rank} --lora-modules {out.name}={out}"
        )
