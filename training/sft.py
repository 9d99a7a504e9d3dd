"""`arena train sft`: supervised fine-tuning on the demonstrations of `arena pairs --mode sft`.

The first stage of PERSUADE's recipe (its DPO base was a Qwen3-4B fine-tuned on arena
demonstrations): the model learns to speak as the debates' winners spoke. Read top to bottom,
`train_sft` does this:

1. Refuses LoRA settings vLLM could not serve (training/adapters.py), before anything loads;
   with `--full` there is no LoRA and every weight is trained.
2. Loads the demonstrations folder (a DatasetDict of `messages` rows: the prompt's messages, then
   the winning turn as the assistant's) and notes its provenance (training/records.py).
3. Turns each row into a prompt-completion row: the prompt is every message but the last, the
   completion the last. So TRL's `SFTTrainer` computes the loss on the winning turn alone (its
   `completion_only_loss`, on by default for such rows): the system prompt, the instruction and,
   with `--context transcript`, the opponent's turns are context, not text to imitate. The test
   split's rows are the held-out texts of the perplexity safety stop, scored the same way.
4. Hands the rest to the run every kind shares (training/run.py): the base resolved, the output
   folder checked or resumed, the run recorded, the model loaded, `SFTTrainer` built here (with
   the PEFT `LoraConfig`, or none for `--full`), the safety stop, the result kept.

A LoRA run leaves an adapter folder (served by vLLM on top of its base); `--full` leaves a whole
model folder. Either can be the `--base` of `arena train dpo`: the adapter is merged into its base
once (training/run.py `merged_base`).

Simplified on purpose: no packing (each demonstration is one sequence, padded in its batch); the
chat template is the base model's own, applied by TRL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arena.core.errors import UserError
from training.config import TrainConfig
from training.records import pairs_provenance
from training.run import (
    RunSpec,
    TrainResult,
    load_splits,
    quiet,
    refuse_unservable,
    run,
    test_split,
)

KIND = "sft"
RESUME_SHAPING = ("completion_only_loss", "assistant_only_loss", "packing")
"""SFT settings a resumed run must share, besides those of every kind (training/run.py)."""
DEMONSTRATION_FIELDS = ("messages",)


def load_demonstrations(folder: Path) -> Any:
    """The DatasetDict that `arena pairs --mode sft --format hf` wrote in `folder`; UserError
    otherwise."""
    return load_splits(folder, "--data", DEMONSTRATION_FIELDS, "demonstrations")


def prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    """A `messages` row as TRL's conversational prompt-completion row: the last message is the
    completion, the ones before it the prompt.

    >>> row = prompt_completion({"messages": [{"role": "user", "content": "Argue."},
    ...                                       {"role": "assistant", "content": "Because."}]})
    >>> row["prompt"], row["completion"]
    ([{'role': 'user', 'content': 'Argue.'}], [{'role': 'assistant', 'content': 'Because.'}])
    """
    messages = list(row["messages"])
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _as_prompt_completion(split: Any) -> Any:
    return split.map(prompt_completion, remove_columns=split.column_names)


def train_sft(
    data: Path,
    base: str,
    out: Path,
    db: Path,
    config: TrainConfig,
    *,
    command: str | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> TrainResult:
    """Fine-tune `base` on the demonstrations in `data` into `out` (a LoRA adapter, or the whole
    model with `config.full`), recorded in `db`.

    `callbacks`: more transformers `TrainerCallback`s (tests); `progress`: show the progress bar.
    Raises UserError on a mistake in the inputs.
    """
    refuse_unservable(config)
    quiet()
    splits = load_demonstrations(data)
    last = splits["train"][0]["messages"][-1:]
    if not last or last[0].get("role") != "assistant":
        raise UserError(
            f"--data {data}: a demonstration must end with the assistant's message (the turn "
            "to learn)"
        )
    test = test_split(splits, "--data", data, config)
    train = _as_prompt_completion(splits["train"])
    held_out = _as_prompt_completion(test) if test is not None else None
    sft = config.sft

    def build(model: Any, tokenizer: Any, callbacks: list[Any]) -> Any:
        from trl.trainer.sft_trainer import SFTTrainer

        return SFTTrainer(
            model=model,
            args=sft,
            train_dataset=train,
            eval_dataset=held_out,
            processing_class=tokenizer,
            peft_config=None if config.full else config.lora,
            callbacks=callbacks,
        )

    spec = RunSpec(
        kind=KIND,
        data=data,
        provenance=pairs_provenance(data, splits),
        held_out=held_out,
        reply="completion",
        build=build,
        shaping=RESUME_SHAPING,
    )
    return run(spec, base, out, db, config, command=command, callbacks=callbacks, progress=progress)
