"""One line per mistake: `file:line: field: problem`, for every kind of input file and for flags.

- `Positions`: where each part of a parsed document starts, a map from a path through the data
  (mapping keys and list indices, `("models", 2, "skill")`) to a 1-based line. A YAML file gets
  one from `arena.config.load.parse_yaml`; a JSON Lines file can give each record's line
  (`{(index,): line}`); data with no file behind it gives `{}`.
- `validate(model, data, source, positions)`: pydantic validation whose first error becomes a
  `ConfigError` naming the field as the user wrote it, at its line (`validation_error` does the
  translation for a caller that validates itself).
- `entry_error(source, path, problem, positions)`: the same for checks made after validation
  (duplicate names, a missing environment variable).
- `yaml_error(exc, source)`: a YAML syntax error, at its line.
- `flag_problem(exc, flags)`: the first error of a model built from command-line options, as
  (flag, problem).

Pydantic's error locations run through the model, not the data: they hold union tags and wrapper
fields the user never wrote. A `judges:` entry is written flat but validated as a role wrapping a
provider spec, so a bad `noise` is at `('judges', 0, 'provider', 'sim', 'noise')`. Steps that are
not in the data are dropped, so the error reads `judges[0].noise`, at the line of that key; the
hint for an unknown field lists the fields of every model that shares that level of the data (the
role's and its provider's).

    >>> from pydantic import BaseModel, ConfigDict
    >>> class Point(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     x: float
    ...     y: float = 0.0
    >>> validate(Point, {"x": [1]}, "points.yaml", {("x",): 3})
    Traceback (most recent call last):
    ...
    arena.core.errors.ConfigError: points.yaml:3: x: Input should be a valid number
    >>> validate(Point, {"x": 1, "z": 2}, "points.yaml", {})
    Traceback (most recent call last):
    ...
    arena.core.errors.ConfigError: points.yaml: z: unknown field (allowed: x, y)

Simplified on purpose: only the first problem is reported (one line, exit code 2), and a field's
line is where its key is written, or the nearest enclosing entry's line when the field is missing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from arena.core.errors import ConfigError

FieldPath = tuple[str | int, ...]
"""A path through parsed data: mapping keys and list indices."""
Positions = Mapping[FieldPath, int]
"""Where each path of a parsed document starts: its 1-based line."""

_M = TypeVar("_M", bound=BaseModel)


def field_text(path: Iterable[str | int]) -> str:
    """A path as the user reads it.

    >>> field_text(("models", 2, "params", "temperature"))
    'models[2].params.temperature'
    """
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def line_of(path: Sequence[str | int], positions: Positions) -> int | None:
    """The line of `path`, or of its nearest ancestor with a known line."""
    for end in range(len(path), -1, -1):
        line = positions.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def entry_error(
    source: str, path: Sequence[str | int], problem: str, positions: Positions | None = None
) -> ConfigError:
    """The error for the field at `path` (a check made after validation), at its line."""
    line = line_of(path, positions) if positions else None
    return ConfigError(source, field_text(path) or None, problem, line)


def yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """A YAML syntax error, at the line where the parser noticed it."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ConfigError(source, None, f"invalid YAML: {problem}", line)


def validate(model: type[_M], data: Any, source: str, positions: Positions) -> _M:
    """`model` validated from `data`; a one-line `ConfigError` on the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, model, data, source, positions) from None


def validation_error(
    exc: ValidationError, model: type[BaseModel], data: Any, source: str, positions: Positions
) -> ConfigError:
    """The first error of validating `data` against `model`, at its field and line."""
    error = exc.errors()[0]
    path = _data_path(error, data)
    return ConfigError(
        source, field_text(path) or None, _problem(error, model, data), line_of(path, positions)
    )


def flag_problem(exc: ValidationError, flags: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The first error of a model built from command-line options, as (flag, problem).

    The flag of field `x_y` is `flags["x_y"]` when given, else `--x-y`; an error of the whole
    model (no field) has the flag ''.
    """
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    flag = (flags or {}).get(name) or ("--" + name.replace("_", "-") if name else "")
    return flag, _problem(error, None, None)


# --- from pydantic's location to the user's data ----------------------------------------------


def _data_path(error: Mapping[str, Any], data: Any) -> FieldPath:
    """The steps of the error's location that exist in the data, plus the field it is about
    when that field is not there (a missing field, a union's missing tag field)."""
    path: list[str | int] = []
    current = data
    for step in error["loc"]:
        if _has_step(current, step):
            path.append(step)
            current = current[step]
    kind = error["type"]
    last = error["loc"][-1] if error["loc"] else None
    if kind == "missing" and isinstance(last, str):
        path.append(last)
    elif kind == "union_tag_invalid":
        tag_field = _discriminator(error)
        if _has_step(current, tag_field):
            path.append(tag_field)
    return tuple(path)


def _has_step(container: Any, step: str | int) -> bool:
    if isinstance(container, Mapping):
        return step in container
    return isinstance(container, list) and isinstance(step, int) and 0 <= step < len(container)


def _discriminator(error: Mapping[str, Any]) -> str:
    return str(error.get("ctx", {}).get("discriminator", "?")).strip("'")


def _problem(error: Mapping[str, Any], model: type[BaseModel] | None, data: Any) -> str:
    kind = error["type"]
    loc = list(error["loc"])
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = _allowed_fields(model, loc, data) if model is not None else []
        close = difflib.get_close_matches(name, allowed, n=1)
        if close:
            return f"unknown field; did you mean {close[0]!r}?"
        return f"unknown field (allowed: {', '.join(allowed)})" if allowed else "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "model_type":  # pydantic adds "or instance of <class>", a name users never wrote
        return "Input should be a valid dictionary"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_field = _discriminator(error)
        tags = ", ".join(_union_tags(model, loc, tag_field)) if model is not None else "?"
        if kind == "union_tag_invalid":
            found = error.get("ctx", {}).get("tag", "?")
            return f"unknown {tag_field} {found!r} (known: {tags})"
        return f"field {tag_field!r} is missing (known {tag_field}s: {tags})"
    return str(error["msg"]).removeprefix("Value error, ")


# --- from pydantic's location to the models that hold it ---------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through list, Optional, Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _step_into(annotation: Any, step: str | int) -> Any:
    """The annotation one location step further: a field's, or a union member's by its tag."""
    if isinstance(step, int):
        return annotation  # a list item: `_models_in` looks through the list
    models = _models_in(annotation)
    if len(models) == 1 and step in models[0].model_fields:
        return models[0].model_fields[step].annotation
    for candidate in models:  # a union tag: the member with a Literal field equal to `step`
        for field in candidate.model_fields.values():
            if get_origin(field.annotation) is Literal and step in get_args(field.annotation):
                return candidate
    return annotation


def _allowed_fields(model: type[BaseModel], loc: list[str | int], data: Any) -> list[str]:
    """The field names one may write where an unknown field was found: those of the model at
    that location, and of every model whose field there is absent from the data (a wrapper, such
    as a role around its provider spec, whose own fields sit beside the wrapped ones)."""
    annotation: Any = model
    current = data
    names: set[str] = set()
    for step in loc[:-1]:
        models = _models_in(annotation)
        if _has_step(current, step):
            current = current[step]
            names = set()
        elif isinstance(step, str) and len(models) == 1 and step in models[0].model_fields:
            names |= set(models[0].model_fields) - {step}
        annotation = _step_into(annotation, step)
    models = _models_in(annotation)
    if len(models) != 1:
        return []
    return sorted(names | set(models[0].model_fields))


def _union_tags(model: type[BaseModel], loc: list[str | int], tag_field: str) -> list[str]:
    """The tags a discriminated union at `loc` accepts, in the union's order."""
    annotation: Any = model
    for step in loc:
        annotation = _step_into(annotation, step)
    tags: list[str] = []
    for member in _models_in(annotation):
        field = member.model_fields.get(tag_field)
        if field is not None:
            tags.extend(str(tag) for tag in get_args(field.annotation) if str(tag) not in tags)
    return tags
