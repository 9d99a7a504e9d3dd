"""Reading the config files: each file read and parsed once, then checked against the schema.

- `parse_yaml(path)`: the data and the line of every key and item (`Positions`), from one parse:
  the file is composed into YAML nodes once, which carry their start marks, and the data is
  constructed from those same nodes. The file is read and composed under `InputLimits`
  (`arena.config.inputs`: a regular file, a size cap, bounded aliases and depth), and a key
  written twice in one mapping is refused at its second line (PyYAML would keep the last).
- `load_topics`, `load_models`: one file each, validated, cross-checked (unique ids and names, a
  role option on the right role), its `tournament:` section checked on its own;
  `check_models` does the models file's checks on data already parsed.
- `resolve_settings`: defaults < topics.yaml `tournament:` < models.yaml `tournament:` < flags.
- `check_environment`: the environment variables the entries in use name (API keys) are set.
- `remember_secrets`: the variables every entry names are handed to the redactor
  (`arena.core.redact`), so that an error quoting a key back is never recorded or printed with it.
- `check_plan`: a plan over `InputLimits.max_unconfirmed_units` debates needs `--yes`.
- `load_tournament`: all of it; a `TournamentConfig` or one `ConfigError`.

Every mistake becomes a `ConfigError` naming the file, the field as written (`models[2].skill`),
the line when known, and what is wrong: `models.yaml:14: models[2].skill: Input should be a
valid number`.

Simplified on purpose: one document per file (a second `---` document is a YAML error), and the
first problem found is the only one reported.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from arena.config.errors import (
    FieldPath,
    Positions,
    entry_error,
    flag_problem,
    validate,
    yaml_error,
)
from arena.config.inputs import InputLimits, StrictLoader, read_input
from arena.config.schema import (
    ContestantRole,
    JudgeRole,
    ModelsFile,
    TopicsFile,
    TournamentConfig,
    TournamentSettings,
)
from arena.core.errors import ConfigError
from arena.core.redact import remember_env

DEFAULT_MODELS_SOURCE = "built-in default models"
"""The source named in errors about the built-in models (`arena.defaults`)."""

SETTING_FLAGS = {"max_concurrency": "--concurrency"}
"""The `arena tournament` flag of a setting whose flag is not `--<setting-with-dashes>`."""


# --- YAML with positions ------------------------------------------------------------------------


def parse_yaml(
    path: Path, limits: InputLimits | None = None, *, list_root: str | None = None
) -> tuple[Any, dict[FieldPath, int]]:
    """A YAML file's data, and the 1-based line of every mapping key and list item in it.

    `limits`: the caps on the file (default: `InputLimits()`). `list_root`:
    when the document is a list, its paths (positions, errors) start with this key, as if the
    file read `<list_root>: [...]` (a topics file may be a bare list)."""
    source = str(path)
    raw = read_input(path, limits)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, None, f"cannot read: not UTF-8 text ({exc.reason})") from None
    loader = StrictLoader(text, source, limits, list_root=list_root)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None
    except RecursionError:  # the depth limit should have caught it first; never a traceback
        raise ConfigError(source, None, "nested too deeply to read") from None
    finally:
        loader.dispose()
    positions: dict[FieldPath, int] = {}
    if node is not None:
        root: FieldPath = (list_root,) if list_root and isinstance(node, yaml.SequenceNode) else ()
        _record_positions(node, root, positions, set())
    return data, positions


def _record_positions(
    node: yaml.Node, path: FieldPath, out: dict[FieldPath, int], inside: set[int]
) -> None:
    """Fill `out` with the line of `path` and of everything under it (an alias that contains
    itself is followed once)."""
    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in inside:
        return
    inside.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            out[sub] = key.start_mark.line + 1
            _record_positions(value, sub, out, inside)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _record_positions(value, (*path, index), out, inside)
    inside.discard(id(node))


# --- the files ----------------------------------------------------------------------------------


def load_topics(path: Path, limits: InputLimits | None = None) -> TopicsFile:
    """topics.yaml: a list of topics, or a mapping with `topics:` and `tournament:`."""
    source = str(path)
    data, positions = parse_yaml(path, limits, list_root="topics")
    if data is None:
        raise ConfigError(source, None, "file is empty; expected a list of topics")
    if isinstance(data, list):
        data = {"topics": data}
    if not isinstance(data, dict):
        raise ConfigError(source, None, "expected a list of topics or a mapping with 'topics:'")
    parsed = validate(TopicsFile, data, source, positions)
    _check_unique([t.id for t in parsed.topics], "topics", "id", source, positions)
    _check_section(parsed.tournament, source, positions)
    return parsed


def load_models(path: Path | None, limits: InputLimits | None = None) -> ModelsFile:
    """A models file; None: the embedded-model defaults (`arena.defaults`)."""
    if path is None:
        from arena.defaults import DEFAULT_MODELS

        return validate(ModelsFile, DEFAULT_MODELS, DEFAULT_MODELS_SOURCE, {})
    data, positions = parse_yaml(path, limits)
    return check_models(data, str(path), positions)


def check_models(data: Any, source: str, positions: Positions) -> ModelsFile:
    """A models file's parsed data checked as `load_models` checks it (`arena models
    add-adapter` checks the file it is about to write this way)."""
    if not isinstance(data, dict):
        raise ConfigError(source, None, "expected a mapping with 'models:' and 'judges:'")
    _check_role_options(data, source, positions)
    parsed = validate(ModelsFile, data, source, positions)
    _check_unique([m.name for m in parsed.models], "models", "name", source, positions)
    _check_unique([j.name for j in parsed.judges], "judges", "name", source, positions)
    _check_section(parsed.tournament, source, positions)
    return parsed


def _check_role_options(data: Mapping[str, Any], source: str, positions: Positions) -> None:
    """A judge's option on a contestant, or a persona on a judge, is a mistake of its own."""
    checks = (("models", JudgeRole, "judges"), ("judges", ContestantRole, "contestants"))
    for section, other_role, other in checks:
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            for field in other_role.role_fields():
                if field in entry:
                    path = (section, index, field)
                    raise entry_error(source, path, f"applies to {other} only", positions)


def _check_unique(
    values: list[str], section: str, field: str, source: str, positions: Positions
) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            problem = f"duplicate {field} {value!r}"
            raise entry_error(source, (section, index, field), problem, positions)
        seen.add(value)


class _SectionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tournament: TournamentSettings


def _check_section(section: Mapping[str, Any], source: str, positions: Positions) -> None:
    """Check a file's `tournament:` section on its own, so errors point into that file."""
    validate(_SectionFile, {"tournament": dict(section)}, source, positions)


# --- settings, environment, all together ------------------------------------------------------


def resolve_settings(
    sections: Sequence[Mapping[str, Any]], flags: Mapping[str, Any]
) -> TournamentSettings:
    """Merge `tournament:` sections (later wins) and flags (win over all; None: not given)."""
    merged: dict[str, Any] = {}
    for section in sections:
        merged.update(section)
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        return TournamentSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError("command line", *flag_problem(exc, SETTING_FLAGS)) from None


def check_environment(
    roles: Sequence[ContestantRole] | Sequence[JudgeRole],
    section: str,
    source: str,
    used: Collection[str] | None = None,
) -> None:
    """Every environment variable a provider names (API keys) must be set, for the entries
    `used` (all when None). Indices are those of the file, so the message points at the entry."""
    for index, role in enumerate(roles):
        if used is not None and role.name not in used:
            continue
        provider = role.provider
        for field in provider.env_fields:
            var = getattr(provider, field)
            if var and not os.environ.get(var):
                problem = f"environment variable {var} is not set"
                raise entry_error(source, (section, index, field), problem)


def remember_secrets(roles: Sequence[ContestantRole] | Sequence[JudgeRole]) -> None:
    """Hand the environment variables the entries name (API keys) to the redactor, so that an
    error quoting one back is recorded and printed without it (`arena.core.redact`)."""
    remember_env(name for role in roles for name in role.provider.env_names())


def check_plan(config: TournamentConfig, limits: InputLimits | None = None) -> None:
    """A plan larger than `limits.max_unconfirmed_units` debates runs only when confirmed
    (`--yes`): a typo in `--replicates` should not start a billion debates, or write their rows."""
    limits = limits or InputLimits()
    debates = config.planned_debates()
    if debates <= limits.max_unconfirmed_units or limits.confirmed:
        return
    n = len(config.contestants)
    per_debate = config.calls_per_debate()
    raise ConfigError(
        "command line",
        "--yes",
        f"the plan is {debates:,} debates ({_count(len(config.topics), 'topic')} x "
        f"{_count(n * (n - 1), 'ordered pair')} x {_count(config.settings.replicates, 'replicate')}"
        f"; about {debates * per_debate:,} model calls, {per_debate} a debate), over the "
        f"{limits.max_unconfirmed_units:,} a run starts without --yes; add --yes to run it",
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def load_tournament(
    topics_path: Path,
    models_path: Path | None,
    flags: Mapping[str, Any] | None = None,
    limits: InputLimits | None = None,
) -> TournamentConfig:
    """Load and cross-check everything a tournament needs; raises ConfigError.

    `limits`: the caps on the input files and the plan (default: `InputLimits()`; the CLI's
    `--max-input-mb` and `--yes` change them)."""
    limits = limits or InputLimits()
    topics = load_topics(topics_path, limits)
    models = load_models(models_path, limits)
    models_source = str(models_path) if models_path is not None else DEFAULT_MODELS_SOURCE
    settings = resolve_settings([topics.tournament, models.tournament], flags or {})
    judges = list(models.judges)
    if settings.judges is not None:
        known = {j.name: j for j in models.judges}
        for name in settings.judges:
            if name not in known:
                raise ConfigError(
                    models_source,
                    "tournament.judges",
                    f"no judge named {name!r} (judges: {', '.join(known)})",
                )
        judges = [known[name] for name in dict.fromkeys(settings.judges)]
    remember_secrets(models.models)
    remember_secrets(models.judges)
    check_environment(models.models, "models", models_source)
    check_environment(models.judges, "judges", models_source, {j.name for j in judges})
    config = TournamentConfig(
        settings=settings,
        topics=topics.topics,
        contestants=list(models.models),
        judges=judges,
        topics_path=topics_path,
        models_path=models_path,
    )
    check_plan(config, limits)
    return config
