"""Runs: which run a command belongs to, and the rows that describe it.

A run is named by `--run`, or by default after the settings that shape every debate in it (turns,
max tokens, seed). So rerunning the same command continues the same run, and adding a topic, a
contestant or a judge to the files and rerunning extends it: only the new debates and verdicts are
produced. What would mix incomparable results is refused before anything is written: other
protocol settings under the same run name, or a model or topic whose definition changed while its
name stayed.
"""

from __future__ import annotations

import json
from typing import Any

from arena import __version__
from arena.backends import BackendSpec
from arena.config import TournamentConfig, TournamentSettings
from arena.core.errors import UserError
from arena.core.ids import content_id
from storage import Store

PROTOCOL_FIELDS = ("turns", "max_tokens", "judge_max_tokens", "seed")


def default_run_id(settings: TournamentSettings) -> str:
    protocol = {name: getattr(settings, name) for name in PROTOCOL_FIELDS}
    return "run-" + content_id("tournament", protocol, length=8)


def _identity(spec: BackendSpec) -> dict[str, Any]:
    """What must not change under a model's name within a run."""
    return {
        "backend": spec.backend,
        "model": spec.model_id(),
        "params": spec.params.model_dump(mode="json"),
        "persona": spec.persona,
        "verdict": spec.verdict,
        "swap_check": spec.swap_check,
    }


def check_run(store: Store, config: TournamentConfig, run_id: str) -> bool:
    """Refuse to continue `run_id` with settings or definitions that differ; True if it exists."""
    rows = store.read("select turns, max_tokens, seed, config from runs where run_id = ?", [run_id])
    if not rows:
        return False
    stored = json.loads(rows[0][3])["settings"]
    for name in PROTOCOL_FIELDS:
        old, new = stored.get(name), getattr(config.settings, name)
        if old != new:
            raise UserError(
                f"run {run_id!r} was started with {name}={old}, and this command asks for "
                f"{name}={new}; continue it with the same setting, or start another --run"
            )
    known: dict[tuple[str, str], dict[str, Any]] = {}
    for role, name, backend, model, params, spec_json in store.read(
        "select role, name, backend, model, params, spec from models where run_id = ?", [run_id]
    ):
        stored = json.loads(spec_json)
        known[(role, name)] = {
            "backend": backend,
            "model": model,
            "params": json.loads(params),
            "persona": stored.get("persona"),
            "verdict": stored.get("verdict", "json"),
            "swap_check": stored.get("swap_check", False),
        }
    for role, specs in (("contestant", config.contestants), ("judge", config.judges)):
        for spec in specs:
            old_identity = known.get((role, spec.name))
            new_identity = _identity(spec)
            if old_identity is None or old_identity == new_identity:
                continue
            changed = ", ".join(k for k in new_identity if new_identity[k] != old_identity[k])
            raise UserError(
                f"{role} {spec.name!r} is defined differently from when run {run_id!r} "
                f"started ({changed} changed); give it a new name or start another --run"
            )
    motions = dict(store.read("select topic_id, motion from topics where run_id = ?", [run_id]))
    for topic in config.topics:
        if topic.id in motions and motions[topic.id] != topic.motion:
            raise UserError(
                f"topic {topic.id!r} has a different motion from when run {run_id!r} started; "
                "give it a new id or start another --run"
            )
    return True


def record_run(
    store: Store, config: TournamentConfig, run_id: str, command: str, created_at: Any
) -> None:
    """Write (or refresh) the run, its topics and its models."""
    resolved = {
        "settings": config.settings.model_dump(mode="json"),
        "topics_file": str(config.topics_path),
        "models_file": str(config.models_path) if config.models_path else None,
        "contestants": [s.model_dump(mode="json") for s in config.contestants],
        "judges": [s.model_dump(mode="json") for s in config.judges],
    }
    settings = config.settings
    store.insert_rows(
        "runs",
        [
            {
                "run_id": run_id,
                "kind": "tournament",
                "created_at": created_at,
                "updated_at": created_at,
                "status": "running",
                "seed": settings.seed,
                "turns": settings.turns,
                "replicates": settings.replicates,
                "max_tokens": settings.max_tokens,
                "config": json.dumps(resolved),
                "command": command,
                "arena_version": __version__,
            }
        ],
        on_conflict="ignore",
    )
    store.execute(
        "update runs set status = 'running', updated_at = ?, config = ?, command = ?,"
        " replicates = greatest(replicates, ?) where run_id = ?",
        [created_at, json.dumps(resolved), command, settings.replicates, run_id],
    )
    store.insert_rows(
        "topics",
        [
            {
                "run_id": run_id,
                "topic_id": t.id,
                "motion": t.motion,
                "category": t.category,
                "tags": t.tags,
            }
            for t in config.topics
        ],
        on_conflict="ignore",
    )
    model_rows = []
    for role, specs in (("contestant", config.contestants), ("judge", config.judges)):
        for spec in specs:
            identity = _identity(spec)
            model_rows.append(
                {
                    "run_id": run_id,
                    "role": role,
                    "name": spec.name,
                    "backend": spec.backend,
                    "model": identity["model"],
                    "params": json.dumps(identity["params"]),
                    "spec": json.dumps(spec.model_dump(mode="json")),
                }
            )
    store.insert_rows("models", model_rows, on_conflict="ignore")


def finish_run(store: Store, run_id: str, status: str, when: Any) -> None:
    store.execute(
        "update runs set status = ?, updated_at = ? where run_id = ?", [status, when, run_id]
    )
