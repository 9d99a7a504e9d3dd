"""Runs: which run a command belongs to, and the rows that describe it.

A run is named by `--run`, or by default after the settings that shape every debate in it (turns,
max tokens, seed). So rerunning the same command continues the same run, and adding a topic, a
contestant or a judge to the files and rerunning extends it: only the new debates and verdicts are
produced. What would mix incomparable results is refused before anything is written: other
protocol settings under the same run name, or a model or topic whose definition changed while its
name stayed.

Each model is stored (`models.spec`, `runs.config`) as the flat entry of arena 0.1, whatever the
classes behind it now (a role wrapping a provider spec): `stored_spec` writes that layout byte for
byte, so that runs recorded before still continue (`tests/test_run_compat.py` resumes one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from arena import __version__
from arena.config import ContestantRole, JudgeRole, TournamentConfig, TournamentSettings
from arena.core.errors import UserError
from arena.core.ids import content_id
from storage import Store

PROTOCOL_FIELDS = ("turns", "max_tokens", "judge_max_tokens", "seed")

_PROVIDER_HEAD = (
    "name",
    "backend",
    "params",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
)
"""The provider fields that come first in a stored spec, then the role options, then the rest
of the provider's: the order of the flat entry that runs recorded before roles were split."""

AnyRole = ContestantRole | JudgeRole


def default_run_id(settings: TournamentSettings) -> str:
    protocol = {name: getattr(settings, name) for name in PROTOCOL_FIELDS}
    return "run-" + content_id("tournament", protocol, length=8)


def _omitted(model: BaseModel) -> dict[str, Any]:
    """pydantic's `exclude` for `model`: the fields it lists in `OMIT_AT_DEFAULT` that are at
    their default, in nested models too."""
    exclude: dict[str, Any] = {}
    omit: tuple[str, ...] = getattr(type(model), "OMIT_AT_DEFAULT", ())
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if name in omit and value == field.get_default(call_default_factory=True):
            exclude[name] = True
        elif isinstance(value, BaseModel) and (inner := _omitted(value)):
            exclude[name] = inner
    return exclude


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=_omitted(model))


def _role_options(cls: type[AnyRole], role: AnyRole) -> dict[str, Any]:
    """The options of role class `cls` as stored for `role`: its own if it is one, else the
    defaults (those in `OMIT_AT_DEFAULT` left out)."""
    if isinstance(role, cls):
        return {k: v for k, v in _dump(role).items() if k != "provider"}
    return {
        name: cls.model_fields[name].get_default(call_default_factory=True)
        for name in cls.role_fields()
        if name not in getattr(cls, "OMIT_AT_DEFAULT", ())
    }


def stored_spec(role: AnyRole) -> dict[str, Any]:
    """A role as it is stored in `models.spec` and `runs.config`: one flat entry, as written.

    The layout is frozen, so that a run recorded before the provider/role split continues: the
    provider's first fields, then the options of both roles (a contestant stores the judge
    options' defaults, a judge `persona: null`), then the provider's own fields. Options added
    since then (`OMIT_AT_DEFAULT`) appear only when set.
    """
    provider = _dump(role.provider)
    flat = {name: provider.pop(name) for name in _PROVIDER_HEAD}
    flat.update(_role_options(ContestantRole, role))
    flat.update(_role_options(JudgeRole, role))
    flat.update(provider)
    return flat


def _identity(model: str | None, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change under a model's name within a run: from its model id (the
    `models.model` column) and its stored spec."""
    return {
        "backend": spec["backend"],
        "model": model,
        "params": spec["params"],
        "persona": spec.get("persona"),
        "verdict": spec.get("verdict", "json"),
        "swap_check": spec.get("swap_check", False),
        "average_orders": spec.get("average_orders", False),
    }


def _roles(config: TournamentConfig) -> list[tuple[str, AnyRole]]:
    """Every role with its kind, as the `models` table names it ('contestant', 'judge')."""
    contestants: list[tuple[str, AnyRole]] = [("contestant", r) for r in config.contestants]
    return contestants + [("judge", r) for r in config.judges]


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
    for kind, name, model, spec_json in store.read(
        "select role, name, model, spec from models where run_id = ?", [run_id]
    ):
        known[(kind, name)] = _identity(model, json.loads(spec_json))
    for kind, role in _roles(config):
        old_identity = known.get((kind, role.name))
        new_identity = _identity(role.provider.model_id(), stored_spec(role))
        if old_identity is None or old_identity == new_identity:
            continue
        changed = ", ".join(k for k in new_identity if new_identity[k] != old_identity[k])
        raise UserError(
            f"{kind} {role.name!r} is defined differently from when run {run_id!r} "
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
        "contestants": [stored_spec(role) for role in config.contestants],
        "judges": [stored_spec(role) for role in config.judges],
    }
    settings = config.settings
    write_run(
        store,
        run_id=run_id,
        kind="tournament",
        config=resolved,
        command=command,
        created_at=created_at,
        seed=settings.seed,
        turns=settings.turns,
        replicates=settings.replicates,
        max_tokens=settings.max_tokens,
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
    write_models(store, run_id, [(kind, role, stored_spec(role)) for kind, role in _roles(config)])


def check_settings(
    store: Store, run_id: str, kind: str, what: str, protocol: Mapping[str, Any]
) -> bool:
    """Whether `run_id` exists; refuse to continue it as another kind of run (`what` names
    this kind in the message: 'a BBQ run') or with other `protocol` settings than it started
    with."""
    rows = store.read("select kind, config from runs where run_id = ?", [run_id])
    if not rows:
        return False
    stored_kind, config_json = rows[0]
    if stored_kind != kind:
        raise UserError(f"run {run_id!r} is a {stored_kind} run, not {what}; choose another --run")
    stored = json.loads(config_json).get("settings", {})
    for name, new in protocol.items():
        old = stored.get(name)
        if old != new:
            raise UserError(
                f"run {run_id!r} was started with {name}={old}, and this command asks for "
                f"{name}={new}; continue it with the same setting, or start another --run"
            )
    return True


Identity = Callable[[str, "str | None", Mapping[str, Any]], dict[str, Any]]
"""What must not change under a name within a run: (backend, model id, stored spec) -> fields."""


def check_identities(
    store: Store,
    run_id: str,
    roles: Iterable[tuple[str, AnyRole, Mapping[str, Any]]],
    identity: Identity,
    label: str = "model",
) -> None:
    """Refuse an entry (role, entry, its stored spec) whose name the run recorded under that
    role with another definition (`identity`); new names are welcome."""
    known = {
        (role, name): identity(backend, model, json.loads(spec))
        for role, name, backend, model, spec in store.read(
            "select role, name, backend, model, spec from models where run_id = ?", [run_id]
        )
    }
    for role_name, role, spec in roles:
        old = known.get((role_name, role.name))
        new = identity(role.provider.backend, role.provider.model_id(), spec)
        if old is None or old == new:
            continue
        changed = ", ".join(k for k in new if new[k] != old.get(k))
        who = label if label else role_name
        raise UserError(
            f"{who} {role.name!r} is defined differently from when run {run_id!r} started "
            f"({changed} changed); give it a new name or start another --run"
        )


def write_run(
    store: Store,
    *,
    run_id: str,
    kind: str,
    config: Mapping[str, Any],
    command: str | None,
    created_at: Any,
    seed: int = 0,
    turns: int = 1,
    replicates: int = 1,
    max_tokens: int = 0,
) -> None:
    """Write the `runs` row of a run being started, or mark a continued one running again with
    this command's resolved `config` (its `replicates` only grow: more samples extend a run)."""
    resolved = json.dumps(config)
    store.insert_rows(
        "runs",
        [
            {
                "run_id": run_id,
                "kind": kind,
                "created_at": created_at,
                "updated_at": created_at,
                "status": "running",
                "seed": seed,
                "turns": turns,
                "replicates": replicates,
                "max_tokens": max_tokens,
                "config": resolved,
                "command": command,
                "arena_version": __version__,
            }
        ],
        on_conflict="ignore",
    )
    store.execute(
        "update runs set status = 'running', updated_at = ?, config = ?, command = ?,"
        " replicates = greatest(replicates, ?) where run_id = ?",
        [created_at, resolved, command, replicates, run_id],
    )


def write_models(
    store: Store, run_id: str, roles: Iterable[tuple[str, AnyRole, Mapping[str, Any]]]
) -> None:
    """The `models` rows of a run: (role, the entry, its stored spec) each; a name already
    recorded under its role is kept as it is (the run's checks refused a changed one)."""
    store.insert_rows(
        "models",
        [
            {
                "run_id": run_id,
                "role": role_name,
                "name": role.name,
                "backend": role.provider.backend,
                "model": role.provider.model_id(),
                "params": json.dumps(spec.get("params", role.params.model_dump(mode="json"))),
                "spec": json.dumps(spec),
            }
            for role_name, role, spec in roles
        ],
        on_conflict="ignore",
    )


def finish_run(store: Store, run_id: str, status: str, when: Any) -> None:
    store.execute(
        "update runs set status = ?, updated_at = ? where run_id = ?", [status, when, run_id]
    )
