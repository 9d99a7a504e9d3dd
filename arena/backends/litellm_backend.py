"""The litellm backend: any API provider litellm knows (`backend: litellm`).

`model` is litellm's "<provider>/<model>" (`openai/gpt-4o-mini`, `anthropic/claude-...`,
`openai/<name>` with `api_base` for any OpenAI-compatible server). The key comes from the
environment variable named by `api_key_env` and is handed to litellm per call, never stored. A
provider that refuses a key quotes it back in its error, and litellm passes that on: the
`BackendError` made of it redacts the key (`arena.core.redact` knows `api_key_env`'s value, and the
provider variables litellm reads by itself, such as OPENAI_API_KEY).

litellm's own retries are off: errors are classified here (`BackendError.kind`) and the engine
retries. Cost per call comes from litellm's bundled cost map, read locally: the environment
variable LITELLM_LOCAL_MODEL_COST_MAP is set before litellm is first imported, since otherwise it
fetches a cost map over the network. litellm takes seconds to import, so it is imported only when
a litellm model is first called; `arena --help` and sim-only runs never load it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import Field

from arena.backends.base import Backend, BackendSpec, Completion, GenerateSettings, Message
from arena.backends.openai_http import retry_after_seconds
from arena.core.errors import BackendError


class LiteLLMSpec(BackendSpec):
    """`backend: litellm`: a model behind any API provider."""

    backend: Literal["litellm"]
    model: str = Field(min_length=1)
    """litellm's model string, '<provider>/<model>', e.g. 'openai/gpt-4o-mini'."""
    api_base: str | None = None
    """Base URL of the API (for self-hosted or OpenAI-compatible servers)."""
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of the environment variable that holds the API key (never the key itself). Unset:
    the provider's usual variable (OPENAI_API_KEY, ...), or no key for a server at `api_base`."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Extra provider-specific request fields, passed through."""

    env_fields: ClassVar[tuple[str, ...]] = ("api_key_env",)

    def model_id(self) -> str | None:
        return self.model


@cache
def _litellm() -> Any:
    """Import litellm once, offline and quiet."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.num_retries = 0
    return litellm


_KINDS: tuple[tuple[str, str], ...] = (
    # litellm exception class name -> our kind; subclasses first (ContextWindowExceededError is
    # a BadRequestError).
    ("ContextWindowExceededError", "context_length"),
    ("ContentPolicyViolationError", "bad_request"),
    ("RateLimitError", "rate_limit"),
    ("Timeout", "timeout"),
    ("AuthenticationError", "auth"),
    ("PermissionDeniedError", "auth"),
    ("NotFoundError", "not_found"),
    ("UnprocessableEntityError", "bad_request"),
    ("BadRequestError", "bad_request"),
    ("ServiceUnavailableError", "server"),
    ("InternalServerError", "server"),
    ("BadGatewayError", "server"),
    ("APIConnectionError", "connection"),
    ("APIResponseValidationError", "malformed"),
    ("APIError", "server"),
)


def classify(error: BaseException, model: str) -> BackendError:
    """Turn a litellm exception into a BackendError with its kind."""
    litellm = _litellm()
    kind = "unknown"
    for name, candidate in _KINDS:
        cls = getattr(litellm, name, None)
        if isinstance(cls, type) and isinstance(error, cls):
            kind = candidate
            break
    retry_after = None
    if kind == "rate_limit":
        # litellm keeps the provider's headers apart; its `response` may be a stand-in.
        for headers in (
            getattr(error, "litellm_response_headers", None),
            getattr(getattr(error, "response", None), "headers", None),
        ):
            if headers is not None and headers.get("retry-after") is not None:
                retry_after = retry_after_seconds(headers.get("retry-after"))
                break
    message = " ".join(str(getattr(error, "message", error)).split())[:500]
    if kind == "unknown":
        return BackendError(
            f"{model}: {type(error).__name__}: {message}", kind=kind, retryable=False
        )
    return BackendError(f"{model}: {message}", kind=kind, retry_after=retry_after)


def _top_logprobs(choice: Any) -> list[tuple[str, float]] | None:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    first = content[0]
    alternatives = getattr(first, "top_logprobs", None) or []
    return [(str(a.token), float(a.logprob)) for a in alternatives] or None


class LiteLLMBackend(Backend):
    spec: LiteLLMSpec

    def __init__(self, spec: LiteLLMSpec):
        super().__init__(spec)
        self.spec = spec

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        litellm = _litellm()
        spec = self.spec
        request: dict[str, Any] = {
            "model": spec.model,
            "messages": [m.as_dict() for m in messages],
            "max_tokens": settings.max_tokens,
            "num_retries": 0,
            "max_retries": 0,
        }
        for key in ("temperature", "top_p", "seed"):
            value = getattr(settings, key)
            if value is not None:
                request[key] = value
        if settings.stop:
            request["stop"] = list(settings.stop)
        if settings.top_logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = settings.top_logprobs
        if spec.api_base:
            request["api_base"] = spec.api_base
        if spec.api_key_env:
            request["api_key"] = os.environ.get(spec.api_key_env)
        elif spec.api_base:
            # A self-hosted server without a key: litellm's OpenAI client refuses to send a
            # request with no key at all, so send a placeholder.
            request["api_key"] = "no-key"
        extra_body = dict(spec.extra_body)
        if settings.repetition_penalty is not None:
            # Not an OpenAI parameter: sent as an extra body field, which servers such as vLLM
            # read; `extra_body` in models.yaml still wins.
            extra_body = {"repetition_penalty": settings.repetition_penalty, **extra_body}
        if extra_body:
            request["extra_body"] = extra_body
        try:
            response = await litellm.acompletion(**request)
        except BackendError:
            raise
        except Exception as error:
            raise classify(error, spec.model) from None
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            reasoning = getattr(choice.message, "reasoning_content", None)
            usage = getattr(response, "usage", None)
        except (AttributeError, IndexError, TypeError) as error:
            raise BackendError(
                f"{spec.model}: unreadable response: {error}", kind="malformed"
            ) from None
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:  # models missing from the cost map have no cost
            cost = None
        return Completion(
            text=text,
            reasoning=reasoning,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            cost_usd=cost,
            finish_reason=getattr(choice, "finish_reason", None),
            top_logprobs=_top_logprobs(choice),
        )
