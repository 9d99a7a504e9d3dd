"""`arena train`: LoRA adapters trained on what the arena recorded (`training`).

- `dpo`: DPO on the preference pairs of `arena pairs --format hf` (training/dpo.py), with
  PERSUADE's hyperparameters as defaults; defaults < `--config` YAML < flags
  (training/config.py). The adapter, its checkpoints and its `arena.json` go to `--out`; the run
  and its metrics to `--db`. Rerunning the same command resumes from the last checkpoint.
- `grpo`: GRPO on a task's prompts and rewards (training/grpo.py): `--task bbq` (BBQ's verifiable
  reward, `--lambda`) or `--task pcp` (PCT's judge-scored rewards, `--judge` of `--models`),
  each with its published recipe as defaults; `--eval-every N` runs the task's benchmark on
  held-out items during training (a leak between training and evaluation is refused).
- `report`: how a run went, from the database (works mid-run): the benchmark by step, the
  reward, loss and KL, as a table, Markdown, JSON or an HTML page with figures.
- `sft`: supervised fine-tuning on the demonstrations of `arena pairs --mode sft --format hf`
  (training/sft.py): a LoRA adapter by default, every weight with `--full`; the same settings,
  store and adapter rules. Its output can be the `--base` of `arena train dpo`.

Exit codes: 0 an adapter was written (also when the perplexity safety stop ended the run early:
the last checkpoint under the bound is the adapter, and a line says so); 1 the safety stop ended
the run before any checkpoint passed its check (no adapter); 2 a mistake in the input (one
`error:` line: a misspelt YAML key names file:line, a missing `train` extra names the extra to
install); 3 `grpo --task pcp`'s judging reached `--budget-usd` (training stopped; rerun with a
higher budget to resume); 4 the store could not be written; 130 stopped by Ctrl-C or a stop
signal (rerun to resume).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from arena.cli.common import (
    DB_OPTION,
    check_report_out,
    emit,
    fail,
    interruptible,
    reported,
)

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
GRPO_FLAGS = {
    **{k: v for k, v in FLAGS.items() if k not in ("max_length", "ppl_bound", "ppl_every")},
    "beta": "--beta",
    "bias_penalty": "--lambda",
    "num_generations": "--num-generations",
    "max_completion_length": "--max-completion-length",
    "temperature": "--temperature",
    "eval_every": "--eval-every",
    "eval_limit": "--eval-limit",
}
"""`arena train grpo`'s flags."""


class Task(StrEnum):
    bbq = "bbq"
    pcp = "pcp"


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


def _resume_hint(out: Path | None) -> Callable[[str], str]:
    """The line printed when a stop signal ends a run: rerun to resume from `out`."""

    def stopped(name: str) -> str:
        return (
            f"interrupted by {name}: rerun the same command to resume from the last checkpoint "
            f"in {out}"
        )

    return stopped


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
    stopped = _resume_hint(out)
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


@app.command()
def grpo(
    task: Task = typer.Option(..., "--task", help="bbq (verifiable reward) or pcp (judged)."),
    base: str = typer.Option(
        ...,
        "--base",
        help="The model to adapt: a hub id, a local model folder, or smollm2-135m-instruct.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="The adapter folder (checkpoints inside; rerun to resume)."
    ),
    db: Path = DB_OPTION,
    data: Path | None = typer.Option(
        None, "--data", help="bbq: a BBQ .jsonl file or a folder of them (its train split)."
    ),
    export: tuple[str, Path] | None = typer.Option(
        None,
        "--export",
        metavar="verl DIR",
        help="Train nothing: write the prompts and the reward for verl (multi-node) into DIR.",
    ),
    prompts: Path | None = typer.Option(
        None, "--prompts", help="pcp: the training prompts (arena pcp build-train, or PCT's)."
    ),
    judge: str | None = typer.Option(None, "--judge", help="pcp: the judge's name in --models."),
    models: Path | None = typer.Option(
        None, "--models", help="pcp: the models file whose judges: has --judge."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="A YAML file of settings (GRPOConfig names; a lora: section)."
    ),
    bias_penalty: float | None = typer.Option(
        None, "--lambda", help="bbq: penalty of a wrong answer that is the biased one. Default 0."
    ),
    budget_usd: float | None = typer.Option(
        None, "--budget-usd", min=0.0, help="pcp: stop once the judging has cost this much."
    ),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="Run the task's benchmark every N steps (0: never). Default 0."
    ),
    eval_limit: int | None = typer.Option(
        None, "--eval-limit", help="Held-out items per benchmark pass (0: all). Default 500."
    ),
    eval_data: Path | None = typer.Option(
        None, "--eval-data", help="bbq: evaluate on these items instead of --data's dev split."
    ),
    eval_pairs: Path | None = typer.Option(
        None, "--eval-pairs", help="pcp: PCP topic pairs to evaluate on (templates beside it)."
    ),
    eval_templates: str | None = typer.Option(
        None, "--eval-templates", help="pcp: the templates to evaluate with (comma-separated)."
    ),
    dev_fraction: float = typer.Option(
        0.2, "--dev-fraction", min=0.0, max=1.0, help="bbq: share of templates held out."
    ),
    split_seed: int = typer.Option(0, "--split-seed", help="bbq: seed of the template split."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Train on a seeded sample of this many prompts."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Stop after this many optimizer steps (bbq default 500)."
    ),
    learning_rate: float | None = typer.Option(
        None, "--learning-rate", help="Default: pcp 1e-4, bbq 5e-6."
    ),
    beta: float | None = typer.Option(
        None, "--beta", help="KL coefficient. Default: bbq 0.04, pcp 0."
    ),
    num_generations: int | None = typer.Option(
        None, "--num-generations", help="Completions per prompt. Default: pcp 16, bbq 8."
    ),
    max_completion_length: int | None = typer.Option(
        None, "--max-completion-length", help="Default: pcp 2048, bbq 512."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Sampling temperature. Default: bbq 1.3, pcp 1.0."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Completions per device per step. Default: pcp 4, bbq 8."
    ),
    grad_accum: int | None = typer.Option(
        None, "--grad-accum", help="Gradient accumulation steps. Default: pcp 4, bbq 1."
    ),
    epochs: float | None = typer.Option(None, "--epochs", help="Default: pcp 3, bbq 1."),
    logging_steps: int | None = typer.Option(
        None, "--logging-steps", help="Record metrics every N steps. Default 10."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Default 42."),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank. Default: pcp 32, bbq 16."),
    lora_alpha: int | None = typer.Option(None, "--lora-alpha", help="Default 32."),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout", help="Default 0.05."),
) -> None:
    """GRPO LoRA training with a task's rewards (bbq, pcp), its published recipe as defaults."""
    flags: dict[str, Any] = {
        "max_steps": max_steps,
        "learning_rate": learning_rate,
        "beta": beta,
        "bias_penalty": bias_penalty,
        "num_generations": num_generations,
        "max_completion_length": max_completion_length,
        "temperature": temperature,
        "per_device_train_batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "num_train_epochs": epochs,
        "logging_steps": logging_steps,
        "seed": seed,
        "eval_every": eval_every,
        "eval_limit": eval_limit,
        "lora.r": lora_r,
        "lora.lora_alpha": lora_alpha,
        "lora.lora_dropout": lora_dropout,
    }

    stopped = _resume_hint(out)
    with reported():
        from training.deps import require_train_extra

        require_train_extra()
        from training.config import GRPO_TASK_DEFAULTS, load_train_config
        from training.grpo import bbq_task, pcp_task, resolve_judge, train_grpo

        if export is not None and export[0] != "verl":
            fail(f"--export {export[0]}: the one export is verl (--export verl DIR)")
        if export is None and out is None:
            fail("--out is required (the adapter folder), unless --export verl DIR")
        _check_task_flags(
            task,
            {
                "--data": data,
                "--eval-data": eval_data,
                "--lambda": bias_penalty,
                "--prompts": prompts,
                "--judge": judge,
                "--models": models,
                "--eval-pairs": eval_pairs,
                "--eval-templates": eval_templates,
                "--budget-usd": budget_usd,
            },
        )
        settings = load_train_config(
            out or export[1],  # type: ignore[index]  # one of them is given
            config,
            flags,
            GRPO_FLAGS,
            kind="grpo",
            defaults=GRPO_TASK_DEFAULTS[task.value],
            defaults_origin=f"--task {task.value}",
        )
        args = settings.grpo
        if task is Task.bbq:
            assert data is not None
            inputs = bbq_task(
                data,
                dev_fraction=dev_fraction,
                split_seed=split_seed,
                eval_data=eval_data,
                eval_limit=args.eval_limit,
                seed=args.seed,
                limit=limit,
            )
        else:
            assert prompts is not None
            role = resolve_judge(judge, models)
            names = [n.strip() for n in eval_templates.split(",")] if eval_templates else None
            inputs = pcp_task(
                prompts,
                role,
                models=models,
                eval_pairs=eval_pairs,
                eval_templates=names,
                eval_limit=args.eval_limit,
                seed=args.seed,
                limit=limit,
                budget_usd=budget_usd,
            )
        if export is not None:
            from training.verl import command_text, export_verl

            record = export_verl(inputs, export[1], base=base, config=settings, db=db)
            rows = record["rows"]
            typer.echo(
                f"wrote {rows['train']} training and {rows['test']} test prompts, and the reward "
                f"module, to {export[1]}"
            )
            typer.echo("train with verl (adjust nodes and GPUs):\n    " + command_text(record))
            return
        assert out is not None
        from arena.core.errors import BudgetReached
        from arena.driver import EXIT_BUDGET

        command = shlex.join(["arena", *sys.argv[1:]])
        try:
            with interruptible(stopped):
                result = train_grpo(inputs, base, out, db, settings, command=command)
        except BudgetReached as exc:
            fail(
                f"{exc}: training stopped; rerun with a higher --budget-usd to resume from "
                f"the last checkpoint in {out}",
                code=EXIT_BUDGET,
            )
    _report(result, base, out, db)


class ReportFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"
    html = "html"


@app.command()
def report(
    db: Path = DB_OPTION,
    run_id: str | None = typer.Option(
        None, "--run", help="The training run (default: the file's only one)."
    ),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Output format."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the markdown, json or html output to this file."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """How a training run went: the benchmark by step, the reward, loss and KL; works mid-run."""
    check_report_out(out, table=fmt is ReportFormat.table, force=force, db=db)
    from eval.training_report import (
        render_html,
        render_json,
        render_markdown,
        render_text,
        training_report,
    )

    with reported():
        found = training_report(db, run_id)
    if fmt is ReportFormat.table:
        from rich.console import Console

        render_text(found, Console())
        return
    renderers = {
        ReportFormat.json: render_json,
        ReportFormat.markdown: render_markdown,
        ReportFormat.html: render_html,
    }
    emit(renderers[fmt](found), out, force=force)


TASK_FLAGS = {
    Task.bbq: ("--data", "--eval-data", "--lambda"),
    Task.pcp: (
        "--prompts",
        "--judge",
        "--models",
        "--eval-pairs",
        "--eval-templates",
        "--budget-usd",
    ),
}
"""The flags only one task reads."""
REQUIRED = {
    Task.bbq: ("--data", "a BBQ .jsonl file or a folder of them"),
    Task.pcp: ("--prompts", "the training prompts' JSON file"),
}


def _check_task_flags(task: Task, given: dict[str, Any]) -> None:
    """One `error:` line for a flag of the other task, or a missing one of this task."""
    for other, flags in TASK_FLAGS.items():
        if other is task:
            continue
        for flag in flags:
            if given.get(flag) is not None:
                fail(f"{flag}: a setting of --task {other.value}, not of --task {task.value}")
    flag, what = REQUIRED[task]
    if given.get(flag) is None:
        fail(f"--task {task.value} needs {flag} ({what})")


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
