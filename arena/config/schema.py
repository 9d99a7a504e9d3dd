"""What the config files may say: pydantic models, with a docstring under each field.

- `Topic`, `TopicsFile`: topics.yaml (a list of motions, or `topics:` and `tournament:`).
- `ContestantRole`, `JudgeRole`, `ModelsFile`: models.yaml. Each entry of `models:` and `judges:`
  is written flat (`{name, backend, model, params, persona}`), and validated as a role that wraps
  a provider spec (`arena.backends.BackendSpec`, one subclass per backend, chosen by `backend`):
  the role's own options are taken out and everything else is the provider's.
- `TournamentSettings`, `RetrySettings`: the `tournament:` section, or flags.
- `TournamentConfig`: everything a tournament needs, validated (built by `arena.config.load`).

A role exposes its provider's `name` and `params` (`role.name`, `role.params`); the backend that
serves it is `create_backend(role.provider)`.

Numbers must be finite (YAML's `.nan` and `.inf`, `--budget-usd inf` are refused) and an integer
a run stores must fit its column (`seed` a BIGINT; `turns`, `replicates`, `max_tokens` INTEGERs):
a value the store would refuse mid-run is refused here, before anything is written.

Simplified on purpose: a role option written on the other role (a `persona` on a judge) is not
refused here but by the loader, before validation, so that it reads as one clear line
(`judges[0].persona: applies to contestants only`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from arena.backends import BackendSpec, GenerationParams, provider_union
from arena.backends.base import INT32_MAX, INT64_MAX, INT64_MIN, STRICT_CONFIG

if TYPE_CHECKING:
    ContestantProvider = BackendSpec
    JudgeProvider = BackendSpec
else:
    ContestantProvider = provider_union("contestant")
    JudgeProvider = provider_union("judge")


class RetrySettings(BaseModel):
    """How the engine retries failed calls that may succeed on another try."""

    model_config = STRICT_CONFIG

    max_attempts: int = Field(8, ge=1, le=INT32_MAX)
    """Attempts per call, the first included."""
    initial_backoff_s: float = Field(1.0, ge=0)
    """First backoff; it doubles each attempt, with full jitter."""
    max_backoff_s: float = Field(60.0, ge=0)
    """Cap on one backoff (a server's Retry-After is honoured up to this)."""
    max_total_s: float = Field(600.0, gt=0)
    """Give up on a call after this long in total."""


class TournamentSettings(BaseModel):
    """Settings of a tournament (`tournament:` section, or flags)."""

    model_config = STRICT_CONFIG

    turns: int = Field(10, ge=2, le=200)
    """Turns per debate, both sides together. FOR opens, sides alternate."""
    replicates: int = Field(1, ge=1, le=INT32_MAX)
    """How many times each (topic, FOR model, AGAINST model) debate is held."""
    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX)
    """Seed for everything random (sampling seeds passed to models, simulated models)."""
    max_tokens: int = Field(512, ge=1, le=INT32_MAX)
    """Max new tokens per turn (a model's `params.max_tokens` overrides it)."""
    judge_max_tokens: int = Field(400, ge=1, le=INT32_MAX)
    """Max new tokens per verdict."""
    judges: list[str] | None = None
    """Names of the judges to use (default: every judge in models.yaml)."""
    max_concurrency: int = Field(64, ge=1, le=INT32_MAX)
    """Calls in flight at once, over all models."""
    budget_usd: float | None = Field(None, gt=0)
    """Stop starting new debates once the run has spent this much (debates under way finish)."""
    request_timeout_s: float = Field(300.0, gt=0)
    """Time limit of one call attempt."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    """Retry policy."""


class Topic(BaseModel):
    """One motion."""

    model_config = STRICT_CONFIG

    id: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")
    """Stable identifier (no spaces)."""
    motion: str = Field(min_length=1)
    """The motion, e.g. 'This house would ban private cars from city centres'."""
    category: str | None = None
    """A category to filter and group by (`arena rank --category`)."""
    tags: list[str] = Field(default_factory=list)
    """Free-form tags."""


class TopicsFile(BaseModel):
    """topics.yaml: the motions, and optional tournament settings."""

    model_config = STRICT_CONFIG

    topics: list[Topic] = Field(min_length=1)
    """The motions (at least one)."""
    tournament: dict[str, Any] = Field(default_factory=dict)
    """Tournament settings; checked on their own (`TournamentSettings`) so errors point here."""


class _Role(BaseModel):
    """What contestants and judges share: a provider spec, read from a flat entry."""

    model_config = STRICT_CONFIG

    provider: BackendSpec
    """Where the calls go: the backend and its settings (the entry's other fields)."""

    @classmethod
    def role_fields(cls) -> tuple[str, ...]:
        """The options of this role (every field but `provider`)."""
        return tuple(name for name in cls.model_fields if name != "provider")

    @model_validator(mode="before")
    @classmethod
    def _split_flat_entry(cls, data: Any) -> Any:
        """`{name, backend, ..., persona}` -> `{persona, provider: {name, backend, ...}}`.

        An entry already split (a `provider` and no `backend`) is left as it is."""
        if not isinstance(data, Mapping) or ("provider" in data and "backend" not in data):
            return data
        own = set(cls.role_fields())
        split: dict[str, Any] = {k: v for k, v in data.items() if k in own}
        split["provider"] = {k: v for k, v in data.items() if k not in own}
        return split

    @property
    def name(self) -> str:
        """The entry's name (the provider's): unique within `models:` and within `judges:`."""
        return self.provider.name

    @property
    def params(self) -> GenerationParams:
        """The provider's generation settings."""
        return self.provider.params


class ContestantRole(_Role):
    """A `models:` entry: a debater."""

    provider: ContestantProvider
    """Where the calls go: the backend and its settings (the entry's other fields)."""
    persona: str | None = Field(None, min_length=1)
    """A persona added to the debater's system prompt ('You are a cautious economist...'), so
    that one model can play several contestants."""


class JudgeRole(_Role):
    """A `judges:` entry: a judge of debates."""

    provider: JudgeProvider
    """Where the calls go: the backend and its settings (the entry's other fields)."""
    verdict: Literal["json", "logprob"] = "json"
    """'json' asks for {"winner", "rationale"}; 'logprob' asks for one word and compares P(FOR)
    with P(AGAINST) in the first token's top logprobs (for small models)."""
    tie_margin: float = Field(0.05, ge=0, le=0.5)
    """With verdict 'logprob': TIE when |P(FOR) - 0.5| is at most this."""
    top_logprobs: int = Field(10, ge=2, le=20)
    """With verdict 'logprob': how many first-token alternatives to ask for."""
    swap_check: bool = False
    """Judge every debate twice with the speakers called Debater A and Debater B instead of FOR
    and AGAINST, FOR being A the first time and B the second, to measure label bias. The first
    verdict counts towards the debate's winner; the second is recorded and does not."""
    average_orders: bool = False
    """Judge every debate with the speakers called Debater A and Debater B, in both orders, and
    average the two readings into one verdict (which counts), cancelling a bias for a label or
    an order. Not with `swap_check`, which keeps the two readings apart."""

    OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("average_orders",)
    """Options added after runs were first recorded: left out of the stored spec while at their
    default, so that a judge defined before they existed is stored, and resumed, as it was (see
    `arena.runs.stored_spec`)."""

    @field_validator("average_orders")
    @classmethod
    def _not_with_swap_check(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("swap_check"):
            raise ValueError(
                "cannot be combined with swap_check: a judge either averages its two readings "
                "into one verdict (average_orders) or records them apart (swap_check)"
            )
        return value


class ModelsFile(BaseModel):
    """models.yaml: the contestants, the judges, and optional tournament settings."""

    model_config = STRICT_CONFIG

    models: list[ContestantRole] = Field(min_length=2)
    """The contestants (at least two)."""
    judges: list[JudgeRole] = Field(min_length=1)
    """The judges (at least one)."""
    tournament: dict[str, Any] = Field(default_factory=dict)
    """Tournament settings; checked on their own (`TournamentSettings`) so errors point here."""


@dataclass(frozen=True)
class TournamentConfig:
    """Everything a tournament needs, validated."""

    settings: TournamentSettings
    """The merged settings: defaults < topics.yaml < models.yaml < flags."""
    topics: list[Topic]
    """The motions."""
    contestants: list[ContestantRole]
    """The contestants, in file order."""
    judges: list[JudgeRole]
    """The judges in use (`tournament.judges` / `--judges` selects and orders them)."""
    topics_path: Path
    """The topics file."""
    models_path: Path | None
    """The models file; None: the built-in defaults (`arena.defaults`)."""

    def planned_debates(self) -> int:
        """How many debates the round robin holds (`arena.schedule.RoundRobin`): every ordered
        pair of contestants on every topic, `replicates` times."""
        n = len(self.contestants)
        return self.settings.replicates * len(self.topics) * n * (n - 1)

    def calls_per_debate(self) -> int:
        """Model calls a debate makes when nothing fails: one per turn, and one per judge
        reading (two for a judge with `swap_check` or `average_orders`). Retries and verdict
        repairs add more."""
        readings = sum(2 if j.swap_check or j.average_orders else 1 for j in self.judges)
        return self.settings.turns + readings
