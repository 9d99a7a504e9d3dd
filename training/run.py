"""The life of an `arena train` run, shared by every kind (training/dpo.py, training/sft.py).

A kind brings its data and its trainer as a `RunSpec`; `run(spec, ...)` does the rest, top to
bottom:

1. Resolves `--base` (`resolve_trained_base`): the embedded model's name (its converted folder,
   arena/backends/local_model.py), a model folder, a hub id, or the output folder of an earlier
   `arena train` run. A LoRA output (an adapter folder) is merged into its own base once
   (`merge_and_unload`) into `<that folder>/merged/`, written atomically and reused while the
   adapter is unchanged; a `--full` output is a model folder already. Either way the chain of
   bases (`base_chain`) goes into `arena.json` and `training_runs.config`.
2. Checks the output folder (`check_output`): new, or one of ours of the same kind with the same
   settings, which is then resumed from its last checkpoint. The run's id is derived from
   (kind, folder).
3. Writes `arena.json` (running), opens the store (`--db`), records the run as running, and
   serves live reads meanwhile.
4. Loads the model (bfloat16 on a GPU that computes it, float32 on the CPU) and its tokenizer,
   and has the kind build its trainer with our callbacks: the metrics recorder, the perplexity
   safety stop on the held-out texts, the progress bar (training/callbacks.py).
5. Measures the base model's perplexity (a new run only: refused when already over the bound),
   trains, and keeps the result (`finish`): the final adapter (or model, `--full`), or, when the
   safety stop ended the run, the last checkpoint under the bound (`keep_checkpoint`). Checks
   that vLLM can serve an adapter, rewrites `arena.json` and records how the run ended.

An error anywhere after the run is recorded marks it 'failed' (or 'interrupted' for Ctrl-C),
with the reason; rerunning the command resumes from the last checkpoint.

Simplified on purpose: the run holds the database for its whole length (as a tournament does;
readers are answered live), so a tournament cannot write to the same file meanwhile; with several
processes (`accelerate launch`) only the first writes to the store, the output folder's record
and a merged base, and that path is not tested yet. A merged base is saved in the checkpoint's
own dtype (bfloat16 for most hub models), as vLLM would load it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.core.errors import BudgetReached, UserError
from storage import Store
from training.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    check_vllm_compatible,
    lora_config_problems,
    read_record,
    vllm_max_lora_rank,
    write_record,
)
from training.config import TrainConfig
from training.records import RunRecorder, now, training_run_id

CHECKPOINT_STATE = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json")
"""Files of a checkpoint that belong to the trainer, not to the adapter (also `rng_state*`,
`training_args.bin`)."""
RESUME_SHAPING = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "loss_type",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "seed",
)
"""Settings a resumed run must share with the run it continues (each kind adds its own)."""
RESUME_SHAPING_LORA = ("r", "lora_alpha", "lora_dropout", "target_modules")
MERGED = "merged"
"""The folder, inside a LoRA output, of its adapter merged into its base (`merged_base`)."""
MERGED_RECORD = "arena-merged.json"
"""What a merged folder records: the adapter folder, its weights' hash, and the base."""

Build = Callable[[Any, Any, list[Any]], Any]
"""(model, tokenizer, callbacks) -> the kind's TRL trainer."""
Attach = Callable[[Store | None, RunRecorder | None], contextlib.AbstractContextManager[Any]]
"""(the store, the run's recorder; both None off the main process) -> a context that holds
what the kind's trainer needs of them while it trains."""


@dataclass(frozen=True)
class TrainResult:
    """How a run ended, and where its adapter (or model) is."""

    run_id: str
    status: str
    """'done' (every step trained) or 'stopped' (the safety stop)."""
    stop_reason: str | None
    steps: int
    """The optimizer step reached (across resumes)."""
    steps_this_time: int
    adapter_dir: Path | None
    """The output folder when it holds an adapter (or a model, `full`), else None."""
    adapter_step: int | None
    seconds: float
    """Wall time of the training loop in this process."""
    tokens_per_second: float | None
    """Training tokens (no padding) per second, this process."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The last logged value of each metric."""
    perplexity: dict[int, float] = field(default_factory=dict)
    """Step -> perplexity of the held-out texts (step 0: the base model)."""
    vllm_problems: list[str] = field(default_factory=list)
    """What would keep vLLM from serving the adapter (empty: nothing)."""
    max_lora_rank: int | None = None
    """The `--max-lora-rank` to serve the adapter with in vLLM (None for a full model)."""
    base_model: str = ""
    """What `--base` resolved to: a hub id or a model folder (a merged one, for an adapter)."""
    full: bool = False
    """The output is a whole model (`arena train sft --full`), not an adapter."""


@dataclass(frozen=True)
class RunSpec:
    """What a kind of run brings to `run`: its data, its held-out texts and its trainer."""

    kind: str
    data: Path
    """The dataset folder (`--pairs`, `--data`)."""
    provenance: dict[str, Any]
    """Where the data came from (training/records.py `pairs_provenance`)."""
    held_out: Any | None
    """Rows with `prompt` and `reply` columns (chat messages) for the safety stop, or None."""
    reply: str
    """The held-out rows' reply column (`chosen`, `completion`)."""
    build: Build
    shaping: tuple[str, ...] = ()
    """Settings of the kind, besides `RESUME_SHAPING`, that a resumed run must share."""
    attach: Attach | None = None
    """What the kind needs of the store for the length of the training (GRPO: its reward
    judge, and its completion records), entered after the run is recorded and left when
    training ends."""


@dataclass(frozen=True)
class Base:
    """What `--base` resolved to."""

    given: str
    path: str
    """A model folder or a hub id, to load."""
    local: bool
    chain: list[dict[str, Any]] = field(default_factory=list)
    """The `arena train` runs behind it, nearest first: run_id, kind, output folder, and the
    base each was trained on (empty for a plain model)."""


# --- inputs -------------------------------------------------------------------------------------


def load_splits(folder: Path, flag: str, fields: Sequence[str], noun: str) -> Any:
    """The DatasetDict that `arena pairs --format hf` wrote in `folder`, with the `fields` its
    train split must have; UserError naming `flag` otherwise (and the command that trains the
    other kind of dataset, when it is one)."""
    import datasets

    if not folder.is_dir():
        raise UserError(f"{flag} {folder}: no such folder (write one with arena pairs --format hf)")
    try:
        splits = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(
            f"{flag} {folder} is not a dataset written by arena pairs --format hf ({exc})"
        ) from None
    if not isinstance(splits, datasets.DatasetDict) or "train" not in splits:
        raise UserError(f"{flag} {folder} has no train split (arena pairs --format hf writes one)")
    columns = splits["train"].column_names
    if "messages" in columns and "messages" not in fields:
        raise UserError(
            f"{flag} {folder} holds SFT demonstrations (arena pairs --mode sft), not preference "
            "pairs: train on it with arena train sft --data"
        )
    if "chosen" in columns and "messages" in fields:
        raise UserError(
            f"{flag} {folder} holds preference pairs (arena pairs --mode dpo), not "
            "demonstrations: train on it with arena train dpo --pairs"
        )
    missing = [name for name in fields if name not in columns]
    if missing:
        raise UserError(f"{flag} {folder}: the train split has no {', '.join(missing)} column")
    if splits["train"].num_rows == 0:
        raise UserError(f"{flag} {folder}: the train split has no {noun}")
    return splits


def test_split(splits: Any, flag: str, folder: Path, config: TrainConfig) -> Any | None:
    """The test split when it has rows; UserError when the safety stop needs it and it has none."""
    test = splits["test"] if "test" in splits and splits["test"].num_rows > 0 else None
    if config.args.ppl_every > 0 and test is None:
        raise UserError(
            f"{flag} {folder} has no test rows for the perplexity safety stop: export some "
            "(arena pairs --test-fraction 0.1), or turn the stop off (--ppl-every 0)"
        )
    return test


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


def resolve_trained_base(base: str) -> Base:
    """`resolve_base`, and also the output folder of an earlier `arena train` run: a model folder
    as it is (`--full`), an adapter merged into its own base (`merged_base`)."""
    folder = Path(base).expanduser()
    is_adapter = folder.is_dir() and (folder / ADAPTER_CONFIG).is_file()
    record = read_record(folder) if folder.is_dir() else None
    if not is_adapter:
        path, local = resolve_base(base)
        return Base(base, path, local, _chain(folder, record, None))
    if record is None or record.get("adapter_step") is None:
        state = "a PEFT adapter without arena.json" if record is None else "a run with no adapter"
        raise UserError(
            f"--base {base}: {state} yet; give a finished arena train output, or a model folder"
        )
    parent = resolve_trained_base(str(record.get("base")))
    merged = merged_base(folder, parent)
    return Base(base, str(merged), True, _chain(folder, record, merged) + parent.chain)


def _chain(folder: Path, record: Mapping[str, Any] | None, merged: Path | None) -> list[Any]:
    if record is None or "run_id" not in record:
        return []
    return [
        {
            "run_id": record.get("run_id"),
            "kind": record.get("kind"),
            "output_dir": str(folder.resolve()),
            "base": record.get("base"),
            "full": bool((record.get("config") or {}).get("full")),
            "merged": str(merged) if merged is not None else None,
        }
    ]


def _weights_hash(adapter: Path) -> str:
    digest = hashlib.sha256()
    with (adapter / ADAPTER_WEIGHTS).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def merged_base(adapter: Path, parent: Base) -> Path:
    """The model folder of `adapter` merged into `parent` (`<adapter>/merged/`): made once,
    written whole or not at all, and made again when the adapter's weights have changed."""
    import json

    from arena.core.files import atomic_output

    target = adapter / MERGED
    digest = _weights_hash(adapter)
    with contextlib.suppress(OSError, ValueError):
        made = json.loads((target / MERGED_RECORD).read_text(encoding="utf-8"))
        if made.get("adapter_sha256") == digest and (target / "config.json").is_file():
            return target
    if not is_main_process():
        raise UserError(f"--base {adapter}: merge it first with one process ({target} is stale)")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet()
    model: Any = AutoModelForCausalLM.from_pretrained(
        parent.path, dtype="auto", local_files_only=parent.local
    )
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tokenizer: Any = AutoTokenizer.from_pretrained(str(adapter))
    with atomic_output(target, force=True, directory=True) as staged:
        merged.save_pretrained(str(staged))
        tokenizer.save_pretrained(str(staged))
        made = {"adapter": str(adapter.resolve()), "adapter_sha256": digest, "base": parent.path}
        (staged / MERGED_RECORD).write_text(json.dumps(made, indent=2) + "\n", "utf-8")
    return target


def check_output(
    out: Path, config: TrainConfig, base: str, data: Path, shaping: Sequence[str]
) -> dict[str, Any] | None:
    """The record of the run `out` holds (None: a new folder); UserError when `out` is not ours
    or holds a run with other settings (`RESUME_SHAPING` and `shaping` of the kind)."""
    kind = config.kind
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the output")
    if not out.is_dir() or not any(out.iterdir()):
        return None
    record = read_record(out)
    if record is None or record.get("kind") != kind:
        raise UserError(
            f"--out {out} exists and is not the folder of an arena train {kind} run; give a new "
            "folder"
        )
    before = record.get("config") or {}
    now_config = config.to_json()
    was_lora, is_lora = before.get("lora") or {}, now_config["lora"] or {}
    differences = [
        ("base", record.get("base"), base),
        ("data", (record.get("pairs") or {}).get("folder"), str(data.resolve())),
        ("full", bool(before.get("full")), config.full),
    ]
    differences += [
        (name, (before.get(kind) or {}).get(name), now_config[kind].get(name))
        for name in (*RESUME_SHAPING, *shaping)
    ]
    differences += [
        (f"lora.{name}", was_lora.get(name), is_lora.get(name)) for name in RESUME_SHAPING_LORA
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
def open_store(db: Path) -> Iterator[Store | None]:
    """The store, serving live reads, on the main process; None on the others."""
    if not is_main_process():
        yield None
        return
    with Store.open(db) as store:
        store.serve_live()
        yield store


def quiet() -> None:
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


def refuse_unservable(config: TrainConfig) -> None:
    """UserError, before anything loads, for LoRA settings vLLM could not serve."""
    if config.full:
        return
    problems = lora_config_problems(config.lora.to_dict())  # type: ignore[no-untyped-call]
    if problems:
        raise UserError(
            "vLLM could not serve an adapter with these LoRA settings: " + "; ".join(problems)
        )


def run(
    spec: RunSpec,
    base: str,
    out: Path,
    db: Path,
    config: TrainConfig,
    *,
    command: str | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> TrainResult:
    """Train `spec`'s data on `base` into `out`, recorded in `db` (see the module doc)."""
    resolved = resolve_trained_base(base)
    out = out.expanduser()
    previous = check_output(out, config, base, spec.data, spec.shaping)
    run_id = training_run_id(spec.kind, out)
    settings = {**config.to_json(), "base_chain": resolved.chain}
    record: dict[str, Any] = {
        "kind": spec.kind,
        "run_id": run_id,
        "status": "running",
        "base": base,
        "base_resolved": resolved.path,
        "base_chain": resolved.chain,
        "pairs": spec.provenance,
        "config": settings,
        "created_at": (previous or {}).get("created_at") or now().isoformat(),
    }
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        write_record(out, record)
    with open_store(db) as store:
        recorder = RunRecorder(store, run_id) if store is not None else None
        if recorder is not None:
            recorder.start(
                kind=spec.kind,
                base=base,
                out=out,
                config=settings,
                pairs=spec.provenance,
                command=command,
            )
        try:
            with spec.attach(store, recorder) if spec.attach else contextlib.nullcontext():
                result = _train(spec, resolved, out, config, run_id, recorder, callbacks, progress)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            if isinstance(exc, BudgetReached):
                status = "stopped"
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
    spec: RunSpec,
    base: Base,
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

    from training.callbacks import ArenaProgress, MetricsRecorder, PerplexityGuard
    from training.perplexity import held_out_texts

    args = config.args
    tokenizer: Any = AutoTokenizer.from_pretrained(base.path, local_files_only=base.local)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(
        base.path, dtype=dtype, local_files_only=base.local
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
    if args.ppl_every > 0 and spec.held_out is not None:
        texts = held_out_texts(
            spec.held_out,
            tokenizer,
            limit=args.ppl_texts,
            max_length=getattr(args, "max_length", None),
            seed=args.seed,
            reply=spec.reply,
        )
        if not texts:
            raise UserError(
                "no held-out text fits in max_length for the perplexity check; "
                "raise max_length, or turn the stop off (--ppl-every 0)"
            )
        guard = PerplexityGuard(
            texts,
            bound=args.ppl_bound,
            every=args.ppl_every,
            batch_size=args.ppl_batch_size,
            pad_id=int(tokenizer.pad_token_id),
            record=record,
            last_good_step=resume[1] if resume else None,
        )
        extra.append(guard)
    if bar is not None:
        extra.append(bar)
    trainer: Any = spec.build(model, tokenizer, [*extra, *callbacks])
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if guard is not None and resume is None:
        base_ppl = guard.check(0, trainer.model)  # a fresh LoRA changes nothing: the base model
        if not guard.passes(base_ppl):
            raise UserError(
                f"the base model's perplexity on {len(guard.texts)} held-out texts is "
                f"{base_ppl:.4g}, already over the bound {args.ppl_bound:g} before training: "
                "raise it (--ppl-bound) or turn the stop off (--ppl-every 0)"
            )
    started_step = resume[1] if resume else 0
    clock = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume[0]) if resume else None)
    seconds = time.monotonic() - clock
    return finish(trainer, guard, metrics, out, config, run_id, base.path, started_step, seconds)


def finish(
    trainer: Any,
    guard: Any | None,
    metrics: Any,
    out: Path,
    config: TrainConfig,
    run_id: str,
    base_model: str,
    started_step: int,
    seconds: float,
) -> TrainResult:
    """Keep what the run ended with in `out` (the final weights, or the last checkpoint under
    the bound after a safety stop), check an adapter against vLLM's rules, and say how it went."""
    steps = int(trainer.state.global_step)
    status, reason = "done", None
    adapter_step: int | None = steps
    if guard is not None and guard.stop_reason is not None:
        status, reason = "stopped", guard.stop_reason
        adapter_step = guard.last_good_step
        if adapter_step is None:
            reason += "; no checkpoint had passed the check, so nothing was kept"
        elif is_main_process():
            keep_checkpoint(out / f"checkpoint-{adapter_step}", out)
            reason += f"; kept the {'model' if config.full else 'adapter'} of step {adapter_step}"
    elif is_main_process():
        trainer.save_model(str(out))
    problems = check_vllm_compatible(out) if adapter_step is not None and not config.full else []
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
        max_lora_rank=None if config.full else vllm_max_lora_rank(int(config.lora.r)),
        base_model=base_model,
        full=config.full,
    )


def keep_checkpoint(checkpoint: Path, out: Path) -> None:
    """Copy the adapter (or model) and tokenizer files of `checkpoint` into `out`, each written
    under a temporary name and renamed, leaving the trainer's own state behind."""
    for path in sorted(checkpoint.iterdir()):
        name = path.name
        if not path.is_file() or name in CHECKPOINT_STATE or name.startswith("rng_state"):
            continue
        if name == "training_args.bin":
            continue
        tmp = out / f".{name}.tmp-{os.getpid()}"
        shutil.copy2(path, tmp)
        os.replace(tmp, out / name)
