"""`arena train dpo`: a LoRA adapter trained with DPO on the pairs of `arena pairs --format hf`.

Read top to bottom, `train_dpo` does this:

1. Refuses LoRA settings vLLM could not serve (training/adapters.py), before anything loads.
2. Loads the pairs folder (a DatasetDict: `train` is trained on; `test` gives the held-out chosen
   texts of the perplexity safety stop) and notes its provenance (training/records.py).
3. Hands the rest to the run every kind shares (training/run.py): `--base` resolved (the
   embedded model's name, a model folder, a hub id, or an `arena train sft` output, an adapter
   merged into its base once), the output folder checked (new, or the same run resumed), the run
   recorded in the store and `arena.json`, the model loaded, the trainer built here, the base
   model's perplexity measured, training with the safety stop, the adapter kept and checked
   against vLLM's rules.

The trainer is TRL's `DPOTrainer` with the PEFT `LoraConfig`: TRL wraps the model itself and,
having no reference model, computes the reference log-probabilities with the adapters disabled
(no copy of the model). So the reference is `--base` itself: after SFT, the SFT'd model.

Simplified on purpose: LoRA only (a full DPO run would need a second copy of the model as its
reference); see training/run.py for what the shared run simplifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.records import pairs_provenance
from training.run import (
    RunSpec,
    TrainResult,
    load_splits,
    quiet,
    refuse_unservable,
    resolve_base,
    run,
    test_split,
)

__all__ = ["KIND", "TrainResult", "_quiet", "load_pairs", "resolve_base", "train_dpo"]

KIND = "dpo"
RESUME_SHAPING = ("beta",)
"""DPO settings a resumed run must share with the run it continues, besides those of every kind
(training/run.py `RESUME_SHAPING`)."""
PAIR_FIELDS = ("prompt", "chosen", "rejected")
_quiet = quiet  # the name bench/train_dpo.py imports


def load_pairs(folder: Path) -> Any:
    """The DatasetDict that `arena pairs --format hf` wrote in `folder`; UserError otherwise."""
    return load_splits(folder, "--pairs", PAIR_FIELDS, "pairs")


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
    refuse_unservable(config)
    quiet()
    splits = load_pairs(pairs)
    test = test_split(splits, "--pairs", pairs, config)
    dpo = config.dpo

    def build(model: Any, tokenizer: Any, callbacks: list[Any]) -> Any:
        from trl.trainer.dpo_trainer import DPOTrainer

        return DPOTrainer(
            model=model,
            args=dpo,
            train_dataset=splits["train"],
            eval_dataset=test,
            processing_class=tokenizer,
            peft_config=config.lora,
            callbacks=callbacks,
        )

    spec = RunSpec(
        kind=KIND,
        data=pairs,
        provenance=pairs_provenance(pairs, splits),
        held_out=test,
        reply="chosen",
        build=build,
        shaping=RESUME_SHAPING,
    )
    return run(spec, base, out, db, config, command=command, callbacks=callbacks, progress=progress)
