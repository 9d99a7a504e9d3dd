"""What `arena bbq run` reads: its settings (flags) and the models that answer.

- `BBQSettings`: which items (categories, split, limit), how they are asked (samples, option
  shuffling, max tokens, top logprobs), and the runner's limits. Flags only: a models.yaml has no
  BBQ section, so that one file serves `arena tournament` and `arena bbq run` alike.
- `load_bbq_config(models_path, flags)`: the models of a models.yaml's `models:` section (one is
  enough; its `judges:` and `tournament:` sections are not read), validated like a tournament's
  contestants, or the embedded model (`BBQ_DEFAULT_MODELS`) when no file is given. Every mistake
  is one `ConfigError` naming the file, line and field, or the flag.

A contestant's `persona` is sent as a system message ("You are ..."), so that one model can
answer as several personas. The embedded default answers greedily with one token: SmolLM2 puts
the letter first, and its first token's probabilities are recorded (`top_logprobs`).

Simplified on purpose: the default model lives here rather than in `arena.defaults`, which holds
the tournament's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arena.backends.base import INT32_MAX, INT64_MAX, INT64_MIN, STRICT_CONFIG
from arena.config.errors import entry_error, flag_problem, validate
from arena.config.inputs import InputLimits
from arena.config.load import check_environment, parse_yaml, remember_secrets
from arena.config.schema import ContestantRole, JudgeRole, RetrySettings
from arena.core.errors import ConfigError
from arena.defaults import DEFAULT_MODEL
from arena.protocol.bbq import CATEGORIES

Split = Literal["dev", "train", "all"]

BBQ_FLAGS = {
    "max_concurrency": "--concurrency",
    "shuffle_options": "--shuffle-options",
}
"""The flag of a setting whose flag is not `--<setting-with-dashes>`."""

PROTOCOL_FIELDS = ("split", "dev_fraction", "seed", "shuffle_options", "max_tokens", "top_logprobs")
"""Settings that change what an answer means: a run keeps them (`arena.tasks.bbq.check_run`),
and the default run id is derived from them. Categories, limit, samples and models only extend
a run."""

DEFAULT_SOURCE = "built-in default BBQ model"
"""The source named in errors about the built-in model."""

BBQ_DEFAULT_MODELS: dict[str, Any] = {
    "models": [
        {
            "name": "smollm2-greedy",
            "backend": "local",
            "model": DEFAULT_MODEL,
            "params": {"temperature": 0.0},
        }
    ]
}
"""What answers when no `--models` is given: the embedded SmolLM2-135M-Instruct, greedy."""

BBQ_DEFAULT_SETTINGS: dict[str, Any] = {"max_tokens": 1, "top_logprobs": 10}
"""Settings of the embedded model's runs, under the flags. SmolLM2 answers with the letter first
("A", "A. The grandfather", "A: ..."; 47 of 48 sampled replies in 8 tokens began with a letter,
the 48th with "A, B or C"), so its first token is its answer, as the default judge reads a
verdict from its first token (`arena.defaults`): one new token, and the first token's top 10
alternatives give the letters' probabilities. On the CPU the prompt (about 120 tokens) costs
most of an answer, and each further token about a fifth more (measured on 8 prompts, one
thread: 7.8 s for one token, 9.4 s for four). `--max-tokens` asks for more."""

DESCRIPTION = (
    "No --models given: the embedded model smollm2-135m-instruct answers (smollm2-greedy: "
    "greedy, its first token as the answer, with its probabilities of A, B and C)."
)


class BBQSettings(BaseModel):
    """Settings of a BBQ run (flags of `arena bbq run`)."""

    model_config = STRICT_CONFIG

    categories: list[str] | None = None
    """Only these BBQ categories (default: every category in the data)."""
    split: Split = "all"
    """Which items: `dev` or `train` of the template-disjoint split, or `all`."""
    dev_fraction: float = Field(0.2, ge=0, le=1)
    """Share of each category's templates in dev (`arena.protocol.bbq.split_by_template`)."""
    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX)
    """Seed of the split, the per-category sample (`limit`), option shuffling and sampling."""
    limit: int | None = Field(None, ge=1, le=INT32_MAX)
    """At most this many items per category, a seeded sample (a larger limit keeps a smaller
    one's items, so raising it extends a run)."""
    samples: int = Field(1, ge=1, le=10_000)
    """Answers per (model, item); each sample gets its own sampling seed."""
    shuffle_options: bool = False
    """Show the options in a seeded order per item instead of the file's (position bias)."""
    max_tokens: int = Field(32, ge=1, le=INT32_MAX)
    """Max new tokens per answer (a model's `params.max_tokens` overrides it)."""
    top_logprobs: int | None = Field(None, ge=1, le=20)
    """Ask for the first token's top alternatives and record P(A), P(B), P(C) (backends that
    return them: local, vllm, vllm-server, sim)."""
    max_concurrency: int = Field(64, ge=1, le=INT32_MAX)
    """Calls in flight at once, over all models."""
    budget_usd: float | None = Field(None, gt=0)
    """Start no new answer once the run has spent this much."""
    request_timeout_s: float = Field(300.0, gt=0)
    """Time limit of one call attempt."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    """Retry policy."""

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for name in value:
            if name not in CATEGORIES:
                raise ValueError(
                    f"unknown BBQ category {name!r} (expected one of {', '.join(CATEGORIES)})"
                )
        if not value:
            raise ValueError("give at least one category")
        return list(dict.fromkeys(value))

    def protocol(self) -> dict[str, Any]:
        """The settings a run keeps (`PROTOCOL_FIELDS`)."""
        return {name: getattr(self, name) for name in PROTOCOL_FIELDS}


class _BBQModelsFile(BaseModel):
    """models.yaml as `arena bbq run` reads it: the `models:` (one or more answerers)."""

    model_config = ConfigDict(extra="forbid")

    models: list[ContestantRole] = Field(min_length=1)
    """The models that answer."""
    judges: list[Any] = Field(default_factory=list)
    """Not read (a tournament's judges)."""
    tournament: dict[str, Any] = Field(default_factory=dict)
    """Not read (a tournament's settings)."""


@dataclass(frozen=True)
class BBQConfig:
    """Everything a BBQ run needs but its items, validated."""

    settings: BBQSettings
    """Defaults < the embedded model's defaults (without --models) < flags."""
    models: list[ContestantRole]
    """The answering models, in file order."""
    models_path: Path | None
    """The models file; None: the embedded model."""


def resolve_bbq_settings(defaults: Mapping[str, Any], flags: Mapping[str, Any]) -> BBQSettings:
    """`defaults` overridden by the flags that were given (None: not given)."""
    merged = {**defaults, **{k: v for k, v in flags.items() if v is not None}}
    try:
        return BBQSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError("command line", *flag_problem(exc, BBQ_FLAGS)) from None


def load_bbq_models(path: Path | None, limits: InputLimits | None = None) -> list[ContestantRole]:
    """The answering models of a models.yaml (its `models:`), or the embedded one."""
    if path is None:
        return validate(_BBQModelsFile, BBQ_DEFAULT_MODELS, DEFAULT_SOURCE, {}).models
    source = str(path)
    data, positions = parse_yaml(path, limits)
    if not isinstance(data, dict):
        raise ConfigError(source, None, "expected a mapping with 'models:'")
    entries = data.get("models")
    if isinstance(entries, list):
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            for option in JudgeRole.role_fields():
                if option in entry:
                    raise entry_error(
                        source, ("models", index, option), "applies to judges only", positions
                    )
    parsed = validate(_BBQModelsFile, data, source, positions)
    seen: set[str] = set()
    for index, role in enumerate(parsed.models):
        if role.name in seen:
            problem = f"duplicate name {role.name!r}"
            raise entry_error(source, ("models", index, "name"), problem, positions)
        seen.add(role.name)
    return parsed.models


def load_bbq_config(
    models_path: Path | None, flags: Mapping[str, Any], limits: InputLimits | None = None
) -> BBQConfig:
    """The settings and models of a BBQ run; one `ConfigError` for the first mistake."""
    models = load_bbq_models(models_path, limits)
    defaults = BBQ_DEFAULT_SETTINGS if models_path is None else {}
    settings = resolve_bbq_settings(defaults, flags)
    source = str(models_path) if models_path is not None else DEFAULT_SOURCE
    remember_secrets(models)
    check_environment(models, "models", source)
    return BBQConfig(settings=settings, models=models, models_path=models_path)
