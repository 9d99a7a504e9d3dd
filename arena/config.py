"""Config files and tournament settings, validated before anything runs.

- `topics.yaml`: a list of motions (or a mapping with `topics:` and an optional `tournament:`).
- `models.yaml`: `models:` (contestants), `judges:`, and an optional `tournament:` section.
- Tournament settings: defaults < topics.yaml `tournament:` < models.yaml `tournament:` < flags.

Every mistake becomes a `ConfigError` naming the file, the field (`models[2].skill`), the YAML line
when known, and what is wrong, e.g. `models.yaml:14: models[2].skill: Input should be a valid
number`. Only the first problem is reported, in one line.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena.backends import BACKEND_NAMES, BackendSpec, ContestantSpec, JudgeSpec
from arena.core.errors import ConfigError
from arena.judging import SWAPPED_SUFFIX

_M = TypeVar("_M", bound=BaseModel)


class RetrySettings(BaseModel):
    """How the engine retries failed calls that may succeed on another try."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(8, ge=1)
    """Attempts per call, the first included."""
    initial_backoff_s: float = Field(1.0, ge=0)
    """First backoff; it doubles each attempt, with full jitter."""
    max_backoff_s: float = Field(60.0, ge=0)
    """Cap on one backoff (a server's Retry-After is honoured up to this)."""
    max_total_s: float = Field(600.0, gt=0)
    """Give up on a call after this long in total."""


class TournamentSettings(BaseModel):
    """Settings of a tournament (`tournament:` section, or flags)."""

    model_config = ConfigDict(extra="forbid")

    turns: int = Field(10, ge=2, le=200)
    """Turns per debate, both sides together. FOR opens, sides alternate."""
    replicates: int = Field(1, ge=1)
    """How many times each (topic, FOR model, AGAINST model) debate is held."""
    seed: int = 0
    """Seed for everything random (sampling seeds passed to models, simulated models)."""
    max_tokens: int = Field(512, ge=1)
    """Max new tokens per turn (a model's `params.max_tokens` overrides it)."""
    judge_max_tokens: int = Field(400, ge=1)
    """Max new tokens per verdict."""
    judges: list[str] | None = None
    """Names of the judges to use (default: every judge in models.yaml)."""
    max_concurrency: int = Field(64, ge=1)
    """Calls in flight at once, over all models."""
    budget_usd: float | None = Field(None, gt=0)
    """Stop starting new debates once the run has spent this much (debates under way finish)."""
    request_timeout_s: float = Field(300.0, gt=0)
    """Time limit of one call attempt."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    """Retry policy."""


class Topic(BaseModel):
    """One motion."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")
    """Stable identifier (no spaces)."""
    motion: str = Field(min_length=1)
    """The motion, e.g. 'This house would ban private cars from city centres'."""
    category: str | None = None
    tags: list[str] = Field(default_factory=list)


class TopicsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topics: list[Topic] = Field(min_length=1)
    tournament: dict[str, Any] = Field(default_factory=dict)


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ContestantSpec] = Field(min_length=2)
    """The contestants (at least two)."""
    judges: list[JudgeSpec] = Field(min_length=1)
    """The judges (at least one)."""
    tournament: dict[str, Any] = Field(default_factory=dict)


def _check_unique(
    values: list[str], section: str, field: str, source: str, lines: Mapping[tuple[Any, ...], int]
) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise _entry_error(source, section, index, field, f"duplicate {field} {value!r}", lines)
        seen.add(value)


def _entry_error(
    source: str,
    section: str,
    index: int,
    field: str,
    problem: str,
    lines: Mapping[tuple[Any, ...], int] | None = None,
) -> ConfigError:
    """The error for `section[index].field`, with its YAML line when known."""
    line = _line_for((section, index, field), lines) if lines is not None else None
    return ConfigError(source, f"{section}[{index}].{field}", problem, line)


@dataclass(frozen=True)
class TournamentConfig:
    """Everything a tournament needs, validated."""

    settings: TournamentSettings
    topics: list[Topic]
    contestants: list[BackendSpec]
    judges: list[BackendSpec]
    topics_path: Path
    models_path: Path | None


# --- YAML with line numbers -------------------------------------------------------------------


def _line_map(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            out[sub] = key.start_mark.line + 1
            _line_map(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _line_map(value, (*path, index), out)


def load_yaml(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse a YAML file; return the data and a map from field path to line number."""
    source = str(path)
    if not path.exists():
        raise ConfigError(source, None, "file not found")
    if path.is_dir():
        raise ConfigError(source, None, "is a directory, not a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, None, f"cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(source, None, f"invalid YAML: {problem}", line) from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _line_map(node, (), lines)
    return data, lines


def _field_path(loc: Sequence[int | str], data: Any) -> tuple[tuple[Any, ...], str]:
    """Turn a pydantic error location into a path through the data and a display string.

    Pydantic adds union tags (`('models', 0, 'sim', 'skill')`); steps that do not exist in the
    data are dropped.
    """
    path: list[Any] = []
    current = data
    steps = list(loc)
    for i, step in enumerate(steps):
        if _has_step(current, step):
            path.append(step)
            current = current[step]
        elif i == len(steps) - 1 and isinstance(step, str) and not step[:1].isupper():
            path.append(step)  # a missing field: name it
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return tuple(path), text


def _has_step(container: Any, step: int | str) -> bool:
    if isinstance(container, Mapping):
        return step in container
    return isinstance(container, list) and isinstance(step, int) and 0 <= step < len(container)


def _line_for(path: tuple[Any, ...], lines: Mapping[tuple[Any, ...], int]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _problem(error: Mapping[str, Any], model: type[BaseModel], path: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        allowed = _allowed_fields(model, error)
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
        return f"unknown field{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        found = error.get("ctx", {}).get("tag", "?")
        return f"unknown backend {found!r} (known: {', '.join(BACKEND_NAMES)})"
    if kind == "union_tag_not_found":
        return f"field 'backend' is missing (known backends: {', '.join(BACKEND_NAMES)})"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _allowed_fields(model: type[BaseModel], error: Mapping[str, Any]) -> list[str]:
    """Field names allowed where an unknown field was found, for the hint."""
    current: Any = model
    for step in list(error["loc"])[:-1]:
        current = _step_into(current, step)
    models = [m for m in _models_in(current)]
    return sorted(models[0].model_fields) if len(models) == 1 else []


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through list, Optional, Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _step_into(current: Any, step: int | str) -> Any:
    if isinstance(step, int):
        return current
    models = _models_in(current)
    if len(models) == 1 and step in models[0].model_fields:
        return models[0].model_fields[str(step)].annotation
    for candidate in models:  # a union tag: the member whose `backend` literal is `step`
        field = candidate.model_fields.get("backend")
        if field is not None and step in get_args(field.annotation):
            return candidate
    return current


def validate_file(
    model: type[_M], data: Any, source: str, lines: Mapping[tuple[Any, ...], int]
) -> _M:
    """Validate `data` against `model`; raise a one-line ConfigError on the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        if error["type"] == "union_tag_invalid":
            loc.append("backend")  # pydantic points at the entry; the tag field is what's wrong
        path, shown = _field_path(loc, data)
        raise ConfigError(
            source, shown or None, _problem(error, model, path), _line_for(path, lines)
        ) from None


# --- loading ----------------------------------------------------------------------------------


def load_topics(path: Path) -> TopicsFile:
    data, lines = load_yaml(path)
    if data is None:
        raise ConfigError(str(path), None, "file is empty; expected a list of topics")
    if isinstance(data, list):
        data = {"topics": data}
        lines = {("topics", *k): v for k, v in lines.items()}
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, "expected a list of topics or a mapping with 'topics:'")
    parsed = validate_file(TopicsFile, data, str(path), lines)
    _check_unique([t.id for t in parsed.topics], "topics", "id", str(path), lines)
    _validate_section(parsed.tournament, str(path), lines)
    return parsed


def load_models(path: Path | None) -> ModelsFile:
    """A models file; None: the embedded-model defaults (arena.defaults)."""
    if path is None:
        from arena.defaults import DEFAULT_MODELS

        return validate_file(ModelsFile, DEFAULT_MODELS, "built-in default models", {})
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, "expected a mapping with 'models:' and 'judges:'")
    parsed = validate_file(ModelsFile, data, str(path), lines)
    _check_roles(parsed, str(path), lines)
    _check_unique([m.name for m in parsed.models], "models", "name", str(path), lines)
    _check_unique([j.name for j in parsed.judges], "judges", "name", str(path), lines)
    _check_judge_names(parsed, str(path), lines)
    _validate_section(parsed.tournament, str(path), lines)
    return parsed


def _check_roles(parsed: ModelsFile, source: str, lines: Mapping[tuple[Any, ...], int]) -> None:
    """Judge settings on a contestant, or a persona on a judge, are mistakes."""
    checks = (("models", parsed.models, "judges"), ("judges", parsed.judges, "contestants"))
    for section, specs, other in checks:
        for index, spec in enumerate(specs):
            only = spec.JUDGE_ONLY if section == "models" else spec.CONTESTANT_ONLY
            for field in only:
                if field in spec.model_fields_set:
                    problem = f"applies to {other} only"
                    raise _entry_error(source, section, index, field, problem, lines)


def _check_judge_names(
    parsed: ModelsFile, source: str, lines: Mapping[tuple[Any, ...], int]
) -> None:
    """`<name>:swapped` names a swap-check judge's second verdicts, so no judge may be called so."""
    for index, spec in enumerate(parsed.judges):
        if spec.name.endswith(SWAPPED_SUFFIX):
            problem = f"names ending in {SWAPPED_SUFFIX!r} are reserved for swap-check verdicts"
            raise _entry_error(source, "judges", index, "name", problem, lines)


def _validate_section(
    section: Mapping[str, Any], source: str, lines: Mapping[tuple[Any, ...], int]
) -> None:
    """Check a file's `tournament:` section on its own, so errors point into that file."""
    wrapped = {"tournament": dict(section)}
    validate_file(_SectionFile, wrapped, source, lines)


class _SectionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tournament: TournamentSettings


def check_environment(
    specs: Sequence[BackendSpec],
    section: str,
    source: str,
    used: Collection[str] | None = None,
) -> None:
    """Every environment variable a spec names (API keys) must be set, for the entries `used`
    (all when None). Indices are those of the file, so the message points at the right entry."""
    for index, spec in enumerate(specs):
        if used is not None and spec.name not in used:
            continue
        for field in spec.env_fields:
            var = getattr(spec, field)
            if var and not os.environ.get(var):
                raise _entry_error(
                    source, section, index, field, f"environment variable {var} is not set"
                )


def resolve_settings(
    sections: Sequence[Mapping[str, Any]], flags: Mapping[str, Any]
) -> TournamentSettings:
    """Merge `tournament:` sections (later wins) and flags (win over all)."""
    merged: dict[str, Any] = {}
    for section in sections:
        merged.update(section)
    given = {k: v for k, v in flags.items() if v is not None}
    merged.update(given)
    try:
        return TournamentSettings.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        flag = "--" + name.replace("_", "-")
        raise ConfigError("command line", flag, _problem(error, TournamentSettings, ())) from None


def load_tournament(
    topics_path: Path, models_path: Path | None, flags: Mapping[str, Any] | None = None
) -> TournamentConfig:
    """Load and cross-check everything a tournament needs; raises ConfigError."""
    topics = load_topics(topics_path)
    models = load_models(models_path)
    settings = resolve_settings([topics.tournament, models.tournament], flags or {})
    judges: list[BackendSpec] = list(models.judges)
    if settings.judges is not None:
        known = {j.name: j for j in models.judges}
        for name in settings.judges:
            if name not in known:
                raise ConfigError(
                    str(models_path or "built-in default models"),
                    "tournament.judges",
                    f"no judge named {name!r} (judges: {', '.join(known)})",
                )
        judges = [known[name] for name in dict.fromkeys(settings.judges)]
    check_environment(models.models, "models", str(models_path))
    check_environment(models.judges, "judges", str(models_path), {j.name for j in judges})
    return TournamentConfig(
        settings=settings,
        topics=topics.topics,
        contestants=list(models.models),
        judges=judges,
        topics_path=topics_path,
        models_path=models_path,
    )
