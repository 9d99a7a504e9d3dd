"""The one seam between the engine and model providers.

A backend turns chat messages and generation settings into a `Completion`. It knows nothing of
debates, and it does not retry: when a call fails it raises `BackendError` with a `kind` that says
whether trying again could help (`should_retry`). The engine owns retries, backoff, timeouts and
concurrency for every backend alike.

Numbers in a spec must be finite (`allow_inf_nan=False`: YAML's `.nan` and `.inf` are refused as
the config is read), and integers a run stores fit their column (`INT32_MAX`, `INT64_MIN` ..
`INT64_MAX`: DuckDB's INTEGER and BIGINT). A spec's environment variables (`env_names`) are
handed to the redactor when its backend is built, so a provider that quotes a key back in an
error never gets it recorded or printed (`arena.core.redact`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from arena.core.errors import BackendError
from arena.core.messages import Message
from arena.core.redact import remember_env

INT32_MAX = 2**31 - 1
"""The largest value of DuckDB's INTEGER (turns, replicates, token counts)."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The range of DuckDB's BIGINT (seeds), and of the seeds providers accept."""

STRICT_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
"""The pydantic config of everything read from a config file: unknown fields and NaN or infinite
numbers are refused."""

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "INT64_MIN",
    "STRICT_CONFIG",
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
    repetition_penalty: float | None = None
    """vLLM's and transformers' repetition penalty (1: none); backends that have none ignore it."""
    no_repeat_ngram_size: int | None = None
    """No sequence of this many tokens twice in prompt and reply (the `local` backend only)."""

    def as_dict(self) -> dict[str, Any]:
        """The settings that identify a request (for its hash): only the ones that are set, so a
        field added later leaves the hashes of requests that do not use it as they were."""
        out: dict[str, Any] = {"max_tokens": self.max_tokens}
        for key in ("temperature", "top_p", "seed", "top_logprobs"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.stop:
            out["stop"] = list(self.stop)
        if self.repetition_penalty is not None:
            out["repetition_penalty"] = self.repetition_penalty
        if self.no_repeat_ngram_size is not None:
            out["no_repeat_ngram_size"] = self.no_repeat_ngram_size
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

    model_config = STRICT_CONFIG

    temperature: float | None = Field(None, ge=0)
    """Sampling temperature; the backend's default when unset."""
    top_p: float | None = Field(None, gt=0, le=1)
    """Nucleus sampling mass."""
    max_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    """Max new tokens per call; overrides the tournament's `max_tokens` for this model."""
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    """Sampling seed passed to the provider (the tournament seed is used when unset)."""
    stop: list[str] = Field(default_factory=list)
    """Stop sequences."""
    repetition_penalty: float | None = Field(None, gt=0)
    """Divides the positive logits (multiplies the negative ones) of every token already in the
    prompt or the reply, as vLLM and transformers do; above 1 discourages repeating, 1 is none.
    Sent by the `local` and `vllm-server` backends, and by `litellm` as an extra body field (for
    servers that read it, such as vLLM); the other backends leave it out."""
    no_repeat_ngram_size: int | None = Field(None, ge=2, le=INT32_MAX)
    """The `local` backend only (no OpenAI-compatible server takes it; the others leave it out):
    as transformers' option of the same name, a reply never makes a sequence of this many tokens
    that its prompt or the reply itself already holds, so a small model neither loops nor copies
    its opponent's turn. Small sizes also forbid the prompt's common phrases; 6 is measured in
    docs/benchmarks.md ("Quickstart")."""

    OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("repetition_penalty", "no_repeat_ngram_size")
    """Settings added after runs were first recorded: left out of a stored spec while unset, so
    that a model defined before they existed is stored, and resumed, as it was (`arena.runs`)."""


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+\-]*$"


class BackendSpec(BaseModel):
    """A provider spec: where a model entry's calls go and how (role options live in
    `arena.config.schema`'s `ContestantRole` and `JudgeRole`, which wrap one of these).

    Every backend subclasses it with a `backend: Literal[...]` tag and its own settings, and is
    registered in `arena.backends.registry`.
    """

    model_config = STRICT_CONFIG

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    """The name used in results and queries; unique within `models:` and within `judges:`."""
    backend: str
    """Which backend serves this model."""
    params: GenerationParams = Field(default_factory=GenerationParams)
    """Generation settings."""
    max_concurrency: int = Field(16, ge=1, le=INT32_MAX)
    """At most this many calls to this model at once."""
    requests_per_minute: float | None = Field(None, gt=0)
    """Rate limit: at most this many calls per minute (a provider's quota)."""
    tokens_per_minute: float | None = Field(None, gt=0)
    """Rate limit: at most this many tokens per minute, counting the prompt (estimated at four
    characters a token) and the max new tokens of each call."""

    env_fields: ClassVar[tuple[str, ...]] = ()
    """Names of fields that hold the *name* of an environment variable that must be set."""

    def env_names(self) -> list[str]:
        """The environment variables this spec names, in its `env_fields` and in every other
        field whose name ends in `_env` (their values are secrets to redact); unset fields are
        left out."""
        fields = dict.fromkeys(
            [*self.env_fields, *(f for f in type(self).model_fields if f.endswith("_env"))]
        )
        names = [getattr(self, f, None) for f in fields]
        return [name for name in names if isinstance(name, str) and name]

    def model_id(self) -> str | None:
        """The backend's own model identifier, when it has one."""
        return None


class Backend(ABC):
    """A model behind the seam. One instance serves one config entry."""

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.name = spec.name
        remember_env(spec.env_names())  # keys a provider may quote back in an error

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
