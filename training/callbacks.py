"""The trainer callbacks of a run: the perplexity safety stop, the metrics recorder, the progress.

`PerplexityGuard` (the safety stop). transformers runs the callbacks of a step in order after the
optimizer step: its own `DefaultFlowCallback` first (which asks for a log, an evaluation, a
checkpoint, the end of training), then ours; the trainer then logs, evaluates and saves as the
flags say. So the guard decides every checkpoint: at each check step (every `ppl_every` steps,
the last step, and any step the save strategy wants to save at) it measures the perplexity of
the held-out chosen texts (training/perplexity.py) with the adapters on, and

- under or at the bound: the step is saved as a checkpoint (whatever the save strategy says);
- over it (or not a number): nothing is saved and training stops, the reason is kept.

Every checkpoint in the output folder has therefore passed its check, and the newest is the last
one under the bound: that is what training/dpo.py keeps as the result of a stopped run. A
checkpoint rotated away by `save_total_limit` is always an older one.

`MetricsRecorder` hands every logged value (TRL's loss, rewards/margins, rewards/accuracies,
learning_rate, ...) and the training tokens per second since the previous log to a function
(the store's writer, training/records.py), on the main process only.

`ArenaProgress` replaces transformers' tqdm bar and its printed dictionaries: on a terminal a
rich bar with the step, the loss, the reward margin and accuracy (SFT: the mean token
accuracy), the last perplexity check and the time left; elsewhere (CI logs, pipes) one plain
line per logging step.

Simplified on purpose: with several processes, each measures the perplexity on its own replica
(the same weights, so the same decision); the texts are not sharded between them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transformers import TrainerCallback

from training.perplexity import Encoded, perplexity

Record = Callable[[int, Mapping[str, float]], None]
"""Receives (step, {metric: value})."""


class PerplexityGuard(TrainerCallback):
    """Check the perplexity of held-out texts at check steps; save only under the bound, stop
    above it (see the module doc)."""

    def __init__(
        self,
        texts: Sequence[Encoded],
        *,
        bound: float,
        every: int,
        batch_size: int,
        pad_id: int,
        record: Record | None = None,
        last_good_step: int | None = None,
        on_check: Callable[[int, float], None] | None = None,
    ) -> None:
        self.texts = list(texts)
        self.bound = bound
        self.every = every
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.record = record
        self.on_check = on_check
        self.checked: dict[int, float] = {}
        """Step -> perplexity measured there."""
        self.last_good_step = last_good_step
        """The last step saved as a checkpoint under the bound (None: none yet)."""
        self.stop_reason: str | None = None
        self.stopped_at: int | None = None

    def measure(self, model: Any) -> float:
        """The perplexity of the held-out texts under `model` as it is now."""
        return perplexity(model, self.texts, batch_size=self.batch_size, pad_id=self.pad_id)

    def passes(self, value: float) -> bool:
        return not math.isnan(value) and value <= self.bound

    def check(self, step: int, model: Any) -> float:
        """Measure (once per step), record and report the perplexity at `step`."""
        if step not in self.checked:
            value = self.measure(model)
            self.checked[step] = value
            if self.record is not None:
                self.record(step, {"eval_perplexity": value})
            if self.on_check is not None:
                self.on_check(step, value)
        return self.checked[step]

    def _gate(self, state: Any, control: Any, model: Any) -> Any:
        step = int(state.global_step)
        due = control.should_save or step % self.every == 0 or step >= state.max_steps
        if not due or model is None or step == 0:
            return control
        value = self.check(step, model)
        if self.passes(value):
            control.should_save = True
            self.last_good_step = step
        else:
            control.should_save = False
            control.should_training_stop = True
            if self.stop_reason is None:
                self.stopped_at = step
                self.stop_reason = (
                    f"perplexity {value:.4g} of {len(self.texts)} held-out chosen texts passed "
                    f"the bound {self.bound:g} at step {step}"
                )
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return self._gate(state, control, kwargs.get("model"))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return self._gate(state, control, kwargs.get("model"))


class MetricsRecorder(TrainerCallback):
    """Hand each log's numbers, and the training tokens per second, to `record`."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.latest: dict[str, float] = {}
        """The last value of each metric."""
        self.started: float | None = None
        self._last: tuple[float, float] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()
        self._last = (self.started, 0.0)  # TRL counts tokens from 0 in each process

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        values = {
            k: float(v)
            for k, v in logs.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        tokens = values.get("num_tokens")
        clock = time.monotonic()
        if tokens is not None and self._last is not None:
            then, before = self._last
            if clock > then and tokens >= before:
                values["tokens_per_second"] = (tokens - before) / (clock - then)
            self._last = (clock, tokens)
        self.latest.update(values)
        self.record(int(state.global_step), values)


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


class ArenaProgress(TrainerCallback):
    """A rich progress bar on a terminal, else a plain line per log (see the module doc)."""

    def __init__(self, console: Any | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.bar: Any = None
        self.task: Any = None
        self.info: dict[str, float] = {}

    def _figures(self) -> list[str]:
        """The loss, DPO's reward margin (when logged), the accuracy (DPO's reward accuracy, or
        SFT's mean token accuracy) and the last perplexity; for GRPO the mean reward, its spread
        within groups and the KL instead."""
        i = self.info
        if "reward" in i:
            return [
                f"loss {_number(i.get('loss'))}",
                f"reward {_number(i['reward'], 3)} ± {_number(i.get('reward_std'), 3)}",
                f"kl {_number(i.get('kl'), 3)}",
            ]
        accuracy = i.get("rewards/accuracies", i.get("mean_token_accuracy"))
        margin = [f"margin {_number(i['rewards/margins'], 3)}"] if "rewards/margins" in i else []
        return [
            f"loss {_number(i.get('loss'))}",
            *margin,
            f"acc {_number(accuracy, 3)}",
            f"ppl {_number(i.get('eval_perplexity'))}",
        ]

    def _line(self, step: int, total: int) -> str:
        i = self.info
        parts = [
            f"step {step}/{total}",
            *self._figures(),
            f"lr {_number(i.get('learning_rate'), 3)}",
            f"tok/s {_number(i.get('tokens_per_second'))}",
        ]
        return " | ".join(parts)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not self.console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]steps"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=2,
        )
        self.task = self.bar.add_task(
            "train", total=state.max_steps, completed=state.global_step, info=""
        )
        self.bar.start()

    def _refresh(self, state: Any) -> None:
        if self.bar is not None:
            info = "  ".join(self._figures())
            self.bar.update(self.task, completed=state.global_step, info=info)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._refresh(state)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        self.info.update({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})
        if self.bar is not None:
            self._refresh(state)
        elif "loss" in logs:
            line = self._line(int(state.global_step), int(state.max_steps))
            self.console.print(line, soft_wrap=True)  # one line a step in a log file

    def note(self, metrics: Mapping[str, float]) -> None:
        """Show values that do not come through the trainer's log (a perplexity check)."""
        self.info.update(metrics)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self._refresh(state)
            self.bar.stop()
            self.bar = None
