"""The one seam between the engine and model providers.

A backend turns chat messages and generation settings into a `Completion`. It knows nothing of
debates, and it does not retry: when a call fails it raises `BackendError` with a `kind` that says
whether trying again could help (`should_retry`). The engine owns retries, backoff, timeouts and
concurrency for every backend alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from arena.core.errors import BackendError
from arena.core.messages import Message

__all__ = [
    "Backend",
    "BackendSpec",
    "Completion",
    "GenerateSettings",
    "GenerationParams",
    "Message",
]


@dataclass(frozen=True, slots=True)
class GenerateSettings:
    """Generation settings for one call (the union of the model's params and the engine's)."""

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int | None = None  # ask for the top-k logprobs of each generated token

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_tokens": self.max_tokens}
        for key in ("temperature", "top_p", "seed", "top_logprobs"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.stop:
            out["stop"] = list(self.stop)
        return out


@dataclass(slots=True)
class Completion:
    """What a backend returns for one successful call."""

    text: str
    reasoning: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    # First generated token's alternatives: list of (token, logprob), most likely first.
    top_logprobs: list[tuple[str, float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class GenerationParams(BaseModel):
    """Generation settings a model entry may set in models.yaml (`params:`)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0)
    """Sampling temperature; the backend's default when unset."""
    top_p: float | None = Field(None, gt=0, le=1)
    """Nucleus sampling mass."""
    max_tokens: int | None = Field(None, ge=1)
    """Max new tokens per call; overrides the tournament's `max_tokens` for this model."""
    seed: int | None = None
    """Sampling seed passed to the provider (the tournament seed is used when unset)."""
    stop: list[str] = Field(default_factory=list)
    """Stop sequences."""


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+\-]*$"


class BackendSpec(BaseModel):
    """Fields every model entry has; each backend adds its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    """The name used in results and queries; unique within `models:` and within `judges:`."""
    backend: str
    """Which backend serves this model."""
    params: GenerationParams = Field(default_factory=GenerationParams)
    """Generation settings."""
    max_concurrency: int = Field(16, ge=1)
    """At most this many calls to this model at once."""
    requests_per_minute: float | None = Field(None, gt=0)
    """Rate limit: at most this many calls per minute (a provider's quota)."""
    tokens_per_minute: float | None = Field(None, gt=0)
    """Rate limit: at most this many tokens per minute, counting the prompt (estimated at four
    characters a token) and the max new tokens of each call."""
    persona: str | None = Field(None, min_length=1)
    """Contestants only: a persona added to the debater's system prompt ('You are a cautious
    economist...'), so that one model can play several contestants."""
    verdict: Literal["json", "logprob"] = "json"
    """Judges only: 'json' asks for {"winner", "rationale"}; 'logprob' asks for one word and
    compares P(FOR) with P(AGAINST) in the first token's top logprobs (for small models)."""
    tie_margin: float = Field(0.05, ge=0, le=0.5)
    """Judges with verdict 'logprob': TIE when |P(FOR) - 0.5| is at most this."""
    top_logprobs: int = Field(10, ge=2, le=20)
    """Judges with verdict 'logprob': how many first-token alternatives to ask for."""
    swap_check: bool = False
    """Judges only: judge every debate twice with the speakers called Debater A and Debater B
    instead of FOR and AGAINST, FOR being A the first time and B the second, to measure label
    bias. The first verdict is stored under the judge's name and counts towards the debate's
    winner; the second is stored under `<name>:swapped` and does not."""

    JUDGE_ONLY: ClassVar[tuple[str, ...]] = ("verdict", "tie_margin", "top_logprobs", "swap_check")
    CONTESTANT_ONLY: ClassVar[tuple[str, ...]] = ("persona",)

    env_fields: ClassVar[tuple[str, ...]] = ()
    """Names of fields that hold the *name* of an environment variable that must be set."""

    def model_id(self) -> str | None:
        """The backend's own model identifier, when it has one."""
        return None


class Backend(ABC):
    """A model behind the seam. One instance serves one config entry."""

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.name = spec.name

    @abstractmethod
    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        """Run one call. Raise `BackendError` on failure; never return None."""

    def should_retry(self, error: BaseException) -> bool:
        """Whether the engine may try this call again after `error`."""
        if isinstance(error, BackendError):
            return error.retryable
        return isinstance(error, TimeoutError | ConnectionError)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections and other resources."""
