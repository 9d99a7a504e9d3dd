"""What a training run writes to the store: its `training_runs` row, its `training_metrics`, and
(GRPO) the `training_completions` it samples.

- `training_run_id(kind, out)`: the run's id, derived from its kind and output folder, so that
  rerunning the same command (which resumes from the folder's last checkpoint) continues the
  same run and its rows.
- `pairs_provenance(folder, splits)`: what the training data came from: the folder, its splits'
  sizes, the chosen and rejected models (for demonstrations: `models`), the debates of the
  training split's rows (`debate_ids`, which join `debates`), and what `arena pairs` recorded in
  the folder's `arena-pairs.json` (its database, run, mode, options and counts, as `export`).
- `RunRecorder`: the run's row (inserted once, then updated) and its metrics (queued on the
  store's writer, one row per metric per logging step, replaced when a rerun trains the step
  again), and the completions a GRPO run samples (`completions`, likewise).

Timestamps are naive UTC, as everywhere in the schema. Simplified on purpose: the debate ids are
a JSON list in the row (one query unnests them) rather than a table of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arena.core.ids import content_id
from pairing.pairs import EXPORT_RECORD
from storage import Store

PAIRS_RECORD = EXPORT_RECORD
"""The file in a pairs folder where `arena pairs` records its database, run and filters."""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def training_run_id(kind: str, out: Path) -> str:
    """`<kind>-` and a hash of (kind, the absolute output folder).

    >>> training_run_id("dpo", Path("/runs/adapter"))
    'dpo-5b1ca2de1fbc'
    """
    return f"{kind}-" + content_id("training", kind, str(out.resolve()), length=12)


def pairs_provenance(folder: Path, splits: Mapping[str, Any]) -> dict[str, Any]:
    """Where the pairs in `folder` (loaded as `splits`, a DatasetDict) came from."""
    info: dict[str, Any] = {
        "folder": str(folder.resolve()),
        "splits": {name: int(split.num_rows) for name, split in splits.items()},
    }
    train = splits.get("train")
    if train is not None:
        columns = set(train.column_names)
        for column in ("chosen_model", "rejected_model", "model"):
            if column in columns:
                info[column + "s"] = sorted({str(v) for v in train[column] if v is not None})
        debates: set[str] = set()
        for column in ("chosen_debate_id", "rejected_debate_id", "debate_id"):
            if column in columns:
                debates.update(str(v) for v in train[column] if v is not None)
        if debates:
            info["debate_ids"] = sorted(debates)
    try:
        export = json.loads((folder / PAIRS_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        export = None
    if export is not None:
        info["export"] = export
    return info


class RunRecorder:
    """The rows of one training run, written through `store`."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def start(
        self,
        *,
        kind: str,
        base: str,
        out: Path,
        config: Mapping[str, Any],
        pairs: Mapping[str, Any],
        command: str | None,
    ) -> None:
        """Insert the run's row (kept as it is if the run was started before), then mark it
        running with the settings of this start."""
        from arena import __version__

        created = now()
        self.store.insert_rows(
            "training_runs",
            [
                {
                    "run_id": self.run_id,
                    "kind": kind,
                    "base": base,
                    "output_dir": str(out.resolve()),
                    "status": "running",
                    "config": dict(config),
                    "pairs": dict(pairs),
                    "command": command,
                    "arena_version": __version__,
                    "created_at": created,
                }
            ],
        )
        self.store.execute(
            "UPDATE training_runs SET status = 'running', stop_reason = NULL, finished_at = NULL,"
            " config = ?, pairs = ?, command = ?, arena_version = ? WHERE run_id = ?",
            [
                json.dumps(config, default=str),
                json.dumps(pairs, default=str),
                command,
                __version__,
                self.run_id,
            ],
        )

    def metrics(self, step: int, values: Mapping[str, Any]) -> None:
        """Queue one row per numeric value (booleans and text are left out)."""
        created = now()
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            self.store.writer.insert(
                "training_metrics",
                {
                    "run_id": self.run_id,
                    "step": int(step),
                    "name": str(name),
                    "value": float(value),
                    "created_at": created,
                },
                on_conflict="update",
            )

    def completions(self, step: int, kind: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue one `training_completions` row per entry of `rows` (`prompt`, `completion`, and
        optionally `reward`, `rewards`, `advantage`), numbered in order; `kind` 'train' or
        'eval'."""
        created = now()
        for idx, row in enumerate(rows):
            rewards = row.get("rewards")
            self.store.writer.insert(
                "training_completions",
                {
                    "run_id": self.run_id,
                    "step": int(step),
                    "kind": kind,
                    "idx": idx,
                    "prompt": str(row["prompt"]),
                    "completion": str(row["completion"]),
                    "reward": _finite(row.get("reward")),
                    "rewards": json.dumps(rewards, default=str) if rewards is not None else None,
                    "advantage": _finite(row.get("advantage")),
                    "created_at": created,
                },
                on_conflict="update",
            )

    def finish(
        self,
        status: str,
        *,
        reason: str | None,
        steps: int | None,
        adapter_step: int | None,
    ) -> None:
        """Record how the run ended (after every metric queued before)."""
        self.store.execute(
            "UPDATE training_runs SET status = ?, stop_reason = ?, steps = ?, adapter_step = ?,"
            " finished_at = ? WHERE run_id = ?",
            [status, reason, steps, adapter_step, now(), self.run_id],
        )


def _finite(value: Any) -> float | None:
    """A number as a float; None for None and NaN (a reward that did not apply)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return None if math.isnan(number) else number
