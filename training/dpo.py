"""`arena train dpo`: a LoRA adapter trained with DPO on the pairs of `arena pairs --format hf`.

Read top to bottom, `train_dpo` does this:

1. Refuses LoRA settings vLLM could not serve (training/adapters.py), before anything loads.
2. Loads the pairs folder (a DatasetDict: `train` is trained on; `test` gives the held-out chosen
   texts of the perplexity safety stop) and notes its provenance (training/records.py).
3. Resolves `--base`: the embedded model's name (`smollm2-135m-instruct`: the folder converted
   once from its package, arena/backends/local_model.py), a local model folder, or a hub id.
4. Checks the output folder: new, or one of ours (its `arena.json`) with the same settings, which
   is then resumed from its last checkpoint. The run's id is derived from (kind, folder).
5. Opens the store (`--db`), records the run as running, and serves live reads meanwhile.
6. Loads the model (bfloat16 on a GPU that computes it, float32 on the CPU) and builds TRL's
   `DPOTrainer` with the PEFT `LoraConfig`: TRL wraps the model itself and, having no reference
   model, computes the reference log-probabilities with the adapters disabled (no copy).
7. Measures the base model's perplexity on the held-out texts (a new run only: refused when the
   base is already over the bound), then trains, checking at every check step
   (training/callbacks.py).
8. Saves the adapter in the output folder: the final one, or, when the safety stop ended the
   run, the last checkpoint under the bound. Checks that vLLM can serve it, writes `arena.json`,
   and records how the run ended.

An error anywhere after the run is recorded marks it 'failed' (or 'interrupted' for Ctrl-C),
with the reason; rerunning the command resumes from the last checkpoint.

Simplified on purpose: the run holds the database for its whole length (as a tournament does;
readers are answered live), so a tournament cannot write to the same file meanwhile; with several
processes (`accelerate launch`) only the first writes to the store and the output folder's
record, and that path is not tested yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.core.errors import UserError
from storage import Store
from training.adapters import (
    check_vllm_compatible,
    lora_config_problems,
    read_record,
    vllm_max_lora_rank,
    write_record,
)
from training.config import TrainConfig
from training.records import RunRecorder, now, pairs_provenance, training_run_id

KIND = "dpo"
CHECKPOINT_STATE = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json")
"""Files of a checkpoint that belong to the trainer, not to the adapter (also `rng_state*`,
`training_args.bin`)."""
RESUME_SHAPING = (
    "learning_rate",
    "beta",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "loss_type",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "seed",
)
"""DPO settings a resumed run must share with the run it continues (the LoRA's too)."""
RESUME_SHAPING_LORA = ("r", "lora_alpha", "lora_dropout", "target_modules")
PAIR_FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class TrainResult:
    """How a run ended, and where its adapter is."""

    run_id: str
    status: str
    """'done' (every step trained) or 'stopped' (the safety stop)."""
    stop_reason: str | None
    steps: int
    """The optimizer step reached (across resumes)."""
    steps_this_time: int
    adapter_dir: Path | None
    """The output folder when it holds an adapter, else None."""
    adapter_step: int | None
    seconds: float
    """Wall time of the training loop in this process."""
    tokens_per_second: float | None
    """Training tokens (chosen and rejected sequences, no padding) per second, this process."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The last logged value of each metric."""
    perplexity: dict[int, float] = field(default_factory=dict)
    """Step -> perplexity of the held-out chosen texts (step 0: the base model)."""
    vllm_problems: list[str] = field(default_factory=list)
    """What would keep vLLM from serving the adapter (empty: nothing)."""
    max_lora_rank: int | None = None
    """The `--max-lora-rank` to serve the adapter with in vLLM."""
    base_model: str = ""
    """What `--base` resolved to: a hub id or a model folder."""


# --- inputs -------------------------------------------------------------------------------------


def load_pairs(folder: Path) -> Any:
    """The DatasetDict that `arena pairs --format hf` wrote in `folder`; UserError otherwise."""
    import datasets

    if not folder.is_dir():
        raise UserError(
            f"--pairs {folder}: no such folder (write one with arena pairs --format hf)"
        )
    try:
        splits = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(
            f"--pairs {folder} is not a dataset written by arena pairs --format hf ({exc})"
        ) from None
    if not isinstance(splits, datasets.DatasetDict) or "train" not in splits:
        raise UserError(f"--pairs {folder} has no train split (arena pairs --format hf writes one)")
    missing = [name for name in PAIR_FIELDS if name not in splits["train"].column_names]
    if missing:
        raise UserError(f"--pairs {folder}: the train split has no {', '.join(missing)} column")
    if splits["train"].num_rows == 0:
        raise UserError(f"--pairs {folder}: the train split has no pairs")
    return splits


def resolve_base(base: str) -> tuple[str, bool]:
    """What to load for `--base`, and whether it is a local folder: the embedded model's name
    (its converted folder), a local model folder, or a Hugging Face hub id (owner/name)."""
    from arena.backends.local_model import KNOWN_MODELS, resolve_model_folder
    from arena.core.errors import BackendError

    if base in KNOWN_MODELS:
        try:
            return str(resolve_model_folder(base)), True
        except BackendError as exc:
            raise UserError(f"--base {base}: {exc}") from None
    folder = Path(base).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise UserError(f"--base {base}: a folder without config.json (not a model folder)")
        return str(folder), True
    parts = base.split("/")
    if len(parts) == 2 and all(parts) and not base.startswith((".", "~")):
        return base, False
    raise UserError(
        f"--base {base!r} is neither a known model ({', '.join(KNOWN_MODELS)}), a model folder "
        "nor a hub id (owner/name)"
    )


def check_output(out: Path, config: TrainConfig, base: str, pairs: Path) -> dict[str, Any] | None:
    """The record of the run `out` holds (None: a new folder); UserError when `out` is not ours
    or holds a run with other settings."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the adapter")
    if not out.is_dir() or not any(out.iterdir()):
        return None
    record = read_record(out)
    if record is None or record.get("kind") != KIND:
        raise UserError(
            f"--out {out} exists and is not the folder of an arena train dpo run; give a new folder"
        )
    before = record.get("config") or {}
    now_config = config.to_json()
    differences = [
        ("base", record.get("base"), base),
        ("pairs", (record.get("pairs") or {}).get("folder"), str(pairs.resolve())),
    ]
    differences += [
        (name, (before.get("dpo") or {}).get(name), now_config["dpo"].get(name))
        for name in RESUME_SHAPING
    ]
    differences += [
        (f"lora.{name}", (before.get("lora") or {}).get(name), now_config["lora"].get(name))
        for name in RESUME_SHAPING_LORA
    ]
    for name, was, is_now in differences:
        if was != is_now:
            raise UserError(
                f"--out {out} holds run {record.get('run_id')} trained with {name}={was!r}, and "
                f"this command says {is_now!r}: give the same settings to resume it, or a new "
                "--out for a new run"
            )
    return record


def last_checkpoint(out: Path) -> tuple[Path, int] | None:
    """The newest `checkpoint-N` folder in `out` and its step."""
    found: list[tuple[int, Path]] = []
    for path in out.glob("checkpoint-*") if out.is_dir() else ():
        digits = path.name.removeprefix("checkpoint-")
        if path.is_dir() and digits.isdigit():
            found.append((int(digits), path))
    if not found:
        return None
    step, path = max(found)
    return path, step


# --- the run ------------------------------------------------------------------------------------


def is_main_process() -> bool:
    """Whether this is the first process of a launch (or the only one)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def _store(db: Path) -> Iterator[Store | None]:
    if not is_main_process():
        yield None
        return
    with Store.open(db) as store:
        store.serve_live()
        yield store


def _quiet() -> None:
    """transformers' and datasets' progress bars and info logs off: ours says what matters; and
    the deprecation warnings TRL and PEFT cause by calling renamed transformers 5 APIs."""
    import warnings

    import datasets

    warnings.filterwarnings(
        "ignore", message=r".*is deprecated and will be removed in v6", category=FutureWarning
    )
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def train_dpo(
    pairs: Path,
    base: str,
    out: Path,
    db: Path,
    config: TrainConfig,
    *,
    command: str | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> TrainResult:
    """Train a DPO LoRA adapter on the pairs in `pairs` into `out`, recorded in `db`.

    `callbacks`: more transformers `TrainerCallback`s (tests); `progress`: show the progress bar
    (else transformers' own is left off too). Raises UserError on a mistake in the inputs.
    """
    problems = lora_config_problems(config.lora.to_dict())  # type: ignore[no-untyped-call]
    if problems:
        raise UserError(
            "vLLM could not serve an adapter with these LoRA settings: " + "; ".join(problems)
        )
    _quiet()
    splits = load_pairs(pairs)
    dpo = config.dpo
    test = splits["test"] if "test" in splits and splits["test"].num_rows > 0 else None
    if dpo.ppl_every > 0 and test is None:
        raise UserError(
            f"--pairs {pairs} has no test pairs for the perplexity safety stop: export some "
            "(arena pairs --test-fraction 0.1), or turn the stop off (--ppl-every 0)"
        )
    provenance = pairs_provenance(pairs, splits)
    model_path, local = resolve_base(base)
    out = out.expanduser()
    previous = check_output(out, config, base, pairs)
    run_id = training_run_id(KIND, out)
    record: dict[str, Any] = {
        "kind": KIND,
        "run_id": run_id,
        "status": "running",
        "base": base,
        "base_resolved": model_path,
        "pairs": provenance,
        "config": config.to_json(),
        "created_at": (previous or {}).get("created_at") or now().isoformat(),
    }
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        write_record(out, record)
    with _store(db) as store:
        recorder = RunRecorder(store, run_id) if store is not None else None
        if recorder is not None:
            recorder.start(
                kind=KIND,
                base=base,
                out=out,
                config=record["config"],
                pairs=provenance,
                command=command,
            )
        try:
            result = _train(
                splits, test, model_path, local, out, config, run_id, recorder, callbacks, progress
            )
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            with contextlib.suppress(Exception):
                if recorder is not None:
                    recorder.finish(status, reason=reason, steps=None, adapter_step=None)
                if is_main_process():
                    write_record(out, {**record, "status": status, "stop_reason": reason})
            raise
        if recorder is not None:
            recorder.finish(
                result.status,
                reason=result.stop_reason,
                steps=result.steps,
                adapter_step=result.adapter_step,
            )
    if is_main_process():
        write_record(
            out,
            {
                **record,
                "status": result.status,
                "stop_reason": result.stop_reason,
                "steps": result.steps,
                "adapter_step": result.adapter_step,
                "vllm": {
                    "max_lora_rank": result.max_lora_rank,
                    "problems": result.vllm_problems,
                },
                "finished_at": now().isoformat(),
            },
        )
    return result


def _train(
    splits: Any,
    test: Any,
    model_path: str,
    local: bool,
    out: Path,
    config: TrainConfig,
    run_id: str,
    recorder: RunRecorder | None,
    callbacks: Sequence[Any],
    progress: bool,
) -> TrainResult:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl.trainer.dpo_trainer import DPOTrainer

    from training.callbacks import ArenaProgress, MetricsRecorder, PerplexityGuard
    from training.perplexity import held_out_texts

    dpo = config.dpo
    tokenizer: Any = AutoTokenizer.from_pretrained(model_path, local_files_only=local)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if dpo.bf16 else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=dtype, local_files_only=local
    )
    bar = ArenaProgress() if progress and is_main_process() else None

    def record(step: int, values: Mapping[str, float]) -> None:
        if recorder is not None:
            recorder.metrics(step, values)
        if bar is not None:
            bar.note(values)

    metrics = MetricsRecorder(record)
    extra: list[Any] = [metrics]
    guard: PerplexityGuard | None = None
    resume = last_checkpoint(out)
    if dpo.ppl_every > 0:
        texts = held_out_texts(
            test, tokenizer, limit=dpo.ppl_texts, max_length=dpo.max_length, seed=dpo.seed
        )
        if not texts:
            raise UserError(
                "no held-out chosen text fits in max_length for the perplexity check; "
                "raise max_length, or turn the stop off (--ppl-every 0)"
            )
        guard = PerplexityGuard(
            texts,
            bound=dpo.ppl_bound,
            every=dpo.ppl_every,
            batch_size=dpo.ppl_batch_size,
            pad_id=int(tokenizer.pad_token_id),
            record=record,
            last_good_step=resume[1] if resume else None,
        )
        extra.append(guard)
    if bar is not None:
        extra.append(bar)
    trainer: Any = DPOTrainer(
        model=model,
        args=dpo,
        train_dataset=splits["train"],
        eval_dataset=test,
        processing_class=tokenizer,
        peft_config=config.lora,
        callbacks=[*extra, *callbacks],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if guard is not None and resume is None:
        base_ppl = guard.check(0, trainer.model)  # a fresh LoRA changes nothing: the base model
        if not guard.passes(base_ppl):
            raise UserError(
                f"the base model's perplexity on {len(guard.texts)} held-out chosen texts is "
                f"{base_ppl:.4g}, already over the bound {dpo.ppl_bound:g} before training: "
                "raise it (--ppl-bound) or turn the stop off (--ppl-every 0)"
            )
    started_step = resume[1] if resume else 0
    clock = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume[0]) if resume else None)
    seconds = time.monotonic() - clock
    steps = int(trainer.state.global_step)

    status, reason = "done", None
    adapter_step: int | None = steps
    if guard is not None and guard.stop_reason is not None:
        status, reason = "stopped", guard.stop_reason
        adapter_step = guard.last_good_step
        if adapter_step is None:
            reason += "; no checkpoint had passed the check, so no adapter was kept"
        elif is_main_process():
            keep_checkpoint(out / f"checkpoint-{adapter_step}", out)
            reason += f"; kept the adapter of step {adapter_step}"
    elif is_main_process():
        trainer.save_model(str(out))
    problems = check_vllm_compatible(out) if adapter_step is not None else []
    # TRL counts the training tokens from 0 in each process (a private attribute; the last
    # logged `num_tokens` when it is gone)
    total_tokens = getattr(trainer, "_total_train_tokens", None)
    if not isinstance(total_tokens, int | float):
        total_tokens = metrics.latest.get("num_tokens")
    return TrainResult(
        run_id=run_id,
        status=status,
        stop_reason=reason,
        steps=steps,
        steps_this_time=steps - started_step,
        adapter_dir=out if adapter_step is not None else None,
        adapter_step=adapter_step,
        seconds=seconds,
        tokens_per_second=(total_tokens / seconds if total_tokens and seconds > 0 else None),
        metrics=dict(metrics.latest),
        perplexity=dict(guard.checked) if guard is not None else {},
        vllm_problems=problems,
        max_lora_rank=vllm_max_lora_rank(int(config.lora.r)),
        base_model=model_path,
    )


def keep_checkpoint(checkpoint: Path, out: Path) -> None:
    """Copy the adapter (and tokenizer) files of `checkpoint` into `out`, each written under a
    temporary name and renamed, leaving the trainer's own state behind."""
    for path in sorted(checkpoint.iterdir()):
        name = path.name
        if not path.is_file() or name in CHECKPOINT_STATE or name.startswith("rng_state"):
            continue
        if name == "training_args.bin":
            continue
        tmp = out / f".{name}.tmp-{os.getpid()}"
        shutil.copy2(path, tmp)
        os.replace(tmp, out / name)
