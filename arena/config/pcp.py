"""What `arena pcp run` reads: its settings (flags), the models that answer and the judges.

- `PCPSettings`: which pairs (templates, valences, limit), how they are asked (samples, max
  tokens), the judges' max tokens, and the runner's limits. Flags only.
- `load_pcp_config(models_path, judges_path, flags)`: the answering models of a models.yaml's
  `models:` (one is enough) and the judges of its `judges:` section, or of `--judges FILE` (a
  YAML with a `judges:` section), which wins; without `--models`, the embedded model answers and
  judges (`PCP_DEFAULT_MODELS`). A judge entry is validated as a tournament's judge; its
  debate-only options (`verdict`, `swap_check`, ...) are not read here. Every mistake is one
  `ConfigError` naming the file, line and field, or the flag.

No system prompt is sent (the published protocol's); a contestant's `persona`, if it has one, is
sent as a system message, as in BBQ runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arena.backends.base import INT32_MAX, INT64_MAX, INT64_MIN, STRICT_CONFIG
from arena.config.errors import entry_error, flag_problem, validate
from arena.config.inputs import InputLimits
from arena.config.load import check_environment, parse_yaml, remember_secrets
from arena.config.schema import ContestantRole, JudgeRole, RetrySettings
from arena.core.errors import ConfigError
from arena.defaults import DEFAULT_MODEL, NO_LOOPS

PCP_FLAGS = {"max_concurrency": "--concurrency"}
"""The flag of a setting whose flag is not `--<setting-with-dashes>`."""

PROTOCOL_FIELDS = ("seed", "max_tokens", "judge_max_tokens")
"""Settings that change what a response or reading means: a run keeps them, and the default run
id is derived from them (with the pairs file). Templates, valences, limit, samples, models and
judges only extend a run."""

DEFAULT_SOURCE = "built-in default PCP models"

PCP_DEFAULT_MODELS: dict[str, Any] = {
    "models": [
        {
            "name": "smollm2",
            "backend": "local",
            "model": DEFAULT_MODEL,
            "params": {"temperature": 0.7, "top_p": 0.95, **NO_LOOPS},
        }
    ],
    "judges": [
        {
            "name": "smollm2-judge",
            "backend": "local",
            "model": DEFAULT_MODEL,
            "params": {"temperature": 0.0},
        }
    ],
}
"""What answers and judges when no `--models` is given: the embedded SmolLM2-135M-Instruct."""

PCP_DEFAULT_SETTINGS: dict[str, Any] = {"max_tokens": 96, "judge_max_tokens": 16}
"""The embedded model's settings, under the flags: short answers (on the CPU each response is
also read by four judge calls), and the judges' few-line replies."""

DESCRIPTION = (
    "No --models given: the embedded model smollm2-135m-instruct answers (smollm2: T=0.7, "
    "96 tokens) and judges (smollm2-judge: greedy); a 135M judge's scores are not meaningful, "
    "the run shows the pipeline."
)


class PCPSettings(BaseModel):
    """Settings of a PCP run (flags of `arena pcp run`)."""

    model_config = STRICT_CONFIG

    templates: list[str] | None = None
    """Only these templates of the templates file (topic-pair files; default: all)."""
    valences: list[str] | None = None
    """Only these valences (topic-pair files; default: all)."""
    limit: int | None = Field(None, ge=1, le=INT32_MAX)
    """At most this many pairs, a seeded sample (a larger limit keeps a smaller one's pairs)."""
    samples: int = Field(1, ge=1, le=10_000)
    """Responses per (model, prompt); each sample gets its own sampling seed."""
    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX)
    """Seed of the sample of pairs and of sampling."""
    max_tokens: int = Field(1024, ge=1, le=INT32_MAX)
    """Max new tokens per response (a model's `params.max_tokens` overrides it)."""
    judge_max_tokens: int = Field(64, ge=1, le=INT32_MAX)
    """Max new tokens per judge reply."""
    max_concurrency: int = Field(64, ge=1, le=INT32_MAX)
    """Calls in flight at once, over all models and judges."""
    budget_usd: float | None = Field(None, gt=0)
    """Start no new pair once the run has spent this much."""
    request_timeout_s: float = Field(300.0, gt=0)
    """Time limit of one call attempt."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    """Retry policy."""

    @field_validator("templates", "valences")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one name")
        return list(dict.fromkeys(value))

    def protocol(self) -> dict[str, Any]:
        """The settings a run keeps (`PROTOCOL_FIELDS`)."""
        return {name: getattr(self, name) for name in PROTOCOL_FIELDS}


class _PCPModelsFile(BaseModel):
    """models.yaml as `arena pcp run` reads it."""

    model_config = ConfigDict(extra="forbid")

    models: list[ContestantRole] = Field(min_length=1)
    judges: list[JudgeRole] = Field(default_factory=list)
    tournament: dict[str, Any] = Field(default_factory=dict)
    """Not read (a tournament's settings)."""


class _PCPJudgesFile(BaseModel):
    """A `--judges` file: a `judges:` section (a models.yaml's other sections are not read)."""

    model_config = ConfigDict(extra="forbid")

    judges: list[JudgeRole] = Field(min_length=1)
    models: list[Any] = Field(default_factory=list)
    tournament: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class PCPConfig:
    """Everything a PCP run needs but its pairs, validated."""

    settings: PCPSettings
    models: list[ContestantRole]
    judges: list[JudgeRole]
    models_path: Path | None
    judges_path: Path | None


def resolve_pcp_settings(defaults: Mapping[str, Any], flags: Mapping[str, Any]) -> PCPSettings:
    """`defaults` overridden by the flags that were given (None: not given)."""
    merged = {**defaults, **{k: v for k, v in flags.items() if v is not None}}
    try:
        return PCPSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError("command line", *flag_problem(exc, PCP_FLAGS)) from None


def _unique(source: str, section: str, names: list[str], positions: Mapping[Any, int]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise entry_error(
                source, (section, index, "name"), f"duplicate name {name!r}", positions
            )
        seen.add(name)


def load_judges_file(path: Path, limits: InputLimits | None = None) -> list[JudgeRole]:
    """The judges of a YAML file's `judges:` section (a models.yaml's `models:` and
    `tournament:` may be there and are not read); one `ConfigError` for the first mistake."""
    source = str(path)
    data, positions = parse_yaml(path, limits)
    if not isinstance(data, dict):
        raise ConfigError(source, None, "expected a mapping with 'judges:'")
    judges = validate(_PCPJudgesFile, data, source, positions).judges
    _unique(source, "judges", [j.name for j in judges], positions)
    return judges


def load_pcp_config(
    models_path: Path | None,
    judges_path: Path | None,
    flags: Mapping[str, Any],
    limits: InputLimits | None = None,
) -> PCPConfig:
    """The settings, models and judges of a PCP run; one `ConfigError` for the first mistake."""
    if models_path is None:
        parsed = validate(_PCPModelsFile, PCP_DEFAULT_MODELS, DEFAULT_SOURCE, {})
        models, judges = parsed.models, parsed.judges
        models_source = DEFAULT_SOURCE
    else:
        models_source = str(models_path)
        data, positions = parse_yaml(models_path, limits)
        if not isinstance(data, dict):
            raise ConfigError(models_source, None, "expected a mapping with 'models:'")
        parsed = validate(_PCPModelsFile, data, models_source, positions)
        _unique(models_source, "models", [m.name for m in parsed.models], positions)
        _unique(models_source, "judges", [j.name for j in parsed.judges], positions)
        models, judges = parsed.models, parsed.judges
    judges_source = models_source
    if judges_path is not None:
        judges_source = str(judges_path)
        judges = load_judges_file(judges_path, limits)
    if not judges:
        raise ConfigError(
            models_source, "judges", "no judges: add a judges: section or give --judges FILE"
        )
    defaults = PCP_DEFAULT_SETTINGS if models_path is None else {}
    settings = resolve_pcp_settings(defaults, flags)
    remember_secrets(models)
    remember_secrets(judges)
    check_environment(models, "models", models_source)
    check_environment(judges, "judges", judges_source)
    return PCPConfig(settings, models, judges, models_path, judges_path)
