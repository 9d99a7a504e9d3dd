"""`backend: vllm-server`: a lean async client of the OpenAI-compatible API that vLLM serves.

It is written directly on aiohttp, without the openai SDK or litellm: on this path those libraries
cost far more CPU per call than the call's HTTP itself (see docs/benchmarks.md, 'Client path'), and
a tournament makes tens of thousands of calls to local servers. One `aiohttp.ClientSession` per
backend, created lazily inside the running event loop; requests are built as dicts and dumped with
`json`, replies read with `json.loads` on the body's bytes (no pydantic on the hot path).

Several replicas of the same model (`api_base: [url, url, ...]`) are load-balanced with prefix
affinity: a call goes to the replica chosen by a hash of its first two messages (so a debate side's
growing prompts find their prefix in that replica's cache), unless that replica has AFFINITY_SLACK
more requests in flight than the least busy one, or failed recently (connection, timeout, 5xx), in
which case the least busy replica takes it.

Errors are classified, never retried here (the engine retries): 429 `rate_limit` (with the
Retry-After delay), 5xx `server`, timeouts `timeout`, refused or dropped connections `connection`,
unreadable bodies `malformed`, unknown models `not_found`, over-long prompts `context_length`, 401
and 403 `auth`, any other 4xx `bad_request`. Messages are one line; the API key a server may quote
back is hidden by `BackendError` itself (`arena.core.redact`, which knows `api_key_env`'s value).

Simplified on purpose: one choice per call (`n` = 1), no streaming, no tools; the cost of a call on
a server you run is not known, so `cost_usd` is None.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import Field, field_validator
from yarl import URL

from arena.backends.base import Backend, BackendSpec, Completion, GenerateSettings, Message
from arena.core.errors import BackendError

_CONTEXT_HINTS = (
    "maximum context length",
    "context length",
    "too many tokens",
    "prompt is too long",
)


class VllmServerSpec(BackendSpec):
    """`backend: vllm-server`: a model served by `vllm serve` (or any OpenAI-compatible server)."""

    backend: Literal["vllm-server"]
    model: str = Field(min_length=1)
    """The served model name (`--served-model-name`, else the model path given to `vllm serve`),
    or a LoRA adapter's name as served with `--lora-modules name=path`."""
    api_base: str | list[str]
    """The API base, e.g. http://127.0.0.1:8000/v1; or a list of replicas serving the same model,
    each call going to the one with the fewest requests in flight."""
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of an environment variable holding a bearer token (the server's `--api-key`), never
    the token itself. The variable must be set; its value is sent with each request and never
    logged or stored."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Merged into every request body last (so it wins), e.g. vLLM sampling extras such as
    `{top_k: 20, repetition_penalty: 1.05}`."""

    env_fields: ClassVar[tuple[str, ...]] = ("api_key_env",)

    @field_validator("api_base")
    @classmethod
    def _check_api_base(cls, value: str | list[str]) -> str | list[str]:
        bases = [value] if isinstance(value, str) else value
        if not bases:
            raise ValueError("give at least one URL")
        for base in bases:
            if not base.startswith(("http://", "https://")):
                raise ValueError(f"{base!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
        return value

    def bases(self) -> list[str]:
        """The replicas' API bases, without a trailing slash."""
        bases = [self.api_base] if isinstance(self.api_base, str) else self.api_base
        return [base.rstrip("/") for base in bases]

    def model_id(self) -> str | None:
        return self.model


AFFINITY_SLACK = 8
"""How many more calls in flight a home replica may have than the least busy one."""
AVOID_AFTER_FAILURE_S = 10.0
"""After a connection error, timeout or 5xx, a replica takes no affinity calls for this long."""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The delay a Retry-After header asks for: delta-seconds or an HTTP date; None if unreadable.

    >>> retry_after_seconds("2"), retry_after_seconds("0.5"), retry_after_seconds(None)
    (2.0, 0.5, None)
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:03 GMT", now=1445412480.0)
    3.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:03 GMT")  # in the past: retry now
    0.0
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are in UTC anyway
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _server_message(raw: bytes) -> str:
    """The error message in a body (vLLM's `message`, OpenAI's `error.message`), on one line."""
    text: Any = None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        text = data.get("message") or (error.get("message") if isinstance(error, dict) else error)
    if not text:
        text = raw[:300].decode("utf-8", "replace")
    return " ".join(str(text).split())[:300] or "(empty body)"


class VllmServerBackend(Backend):
    """Calls a vLLM server (or several replicas) over HTTP."""

    spec: VllmServerSpec

    def __init__(
        self, spec: VllmServerSpec, *, client_timeout: aiohttp.ClientTimeout | None = None
    ):
        """`client_timeout`: aiohttp's own limits; none by default, since the engine times calls."""
        super().__init__(spec)
        self.spec = spec
        self._bases = spec.bases()
        self._urls = [URL(base + "/chat/completions") for base in self._bases]
        self._in_flight = [0] * len(self._urls)
        self._avoid_until = [0.0] * len(self._urls)
        self._next = 0
        self._timeout = client_timeout or aiohttp.ClientTimeout(total=None)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def in_flight(self) -> list[int]:
        """Requests in flight to each replica, in `api_base` order."""
        return list(self._in_flight)

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self.spec.api_key_env:
                # Read when the session opens (the config check made sure it is set), held only
                # in the session's headers: never in the spec, a message or a record.
                key = os.environ.get(self.spec.api_key_env)
                if key:
                    headers["Authorization"] = f"Bearer {key}"
            # The engine bounds concurrency per model; the pool only has to never be the limit.
            connector = aiohttp.TCPConnector(
                limit=max(100, 2 * self.spec.max_concurrency), limit_per_host=0, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers=headers, timeout=self._timeout, raise_for_status=False
            )
            self._loop = loop
        return self._session

    def _pick(self, messages: list[Message] | None = None) -> int:
        """The replica for a call.

        Prefix affinity: calls whose first two messages are the same (one side of one debate, or
        the openings of a model on a motion) go to the same "home" replica, whose prefix cache
        holds their earlier prompts, as long as it has at most AFFINITY_SLACK more calls in flight
        than the least busy replica and has not failed in the last AVOID_AFTER_FAILURE_S.
        Otherwise, and for calls without messages: the replica with the fewest calls in flight,
        recently failed replicas last, ties going round in turn.
        """
        counts = self._in_flight
        n = len(counts)
        if n == 1:
            return 0
        if messages:
            prefix = "\x00".join(m.content for m in messages[:2]).encode()
            home = zlib.crc32(prefix) % n
            healthy = self._avoid_until[home] <= time.monotonic()
            if healthy and counts[home] <= min(counts) + AFFINITY_SLACK:
                return home
        now = time.monotonic()
        start = self._next
        self._next = (start + 1) % n

        def load(index: int) -> tuple[bool, int]:  # replicas that failed recently come last
            return (self._avoid_until[index] > now, counts[index])

        best = start
        for step in range(1, n):
            index = (start + step) % n
            if load(index) < load(best):
                best = index
        return best

    def _body(self, messages: list[Message], settings: GenerateSettings) -> bytes:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": settings.max_tokens,
        }
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        if settings.top_p is not None:
            body["top_p"] = settings.top_p
        if settings.seed is not None:
            body["seed"] = settings.seed
        if settings.stop:
            body["stop"] = list(settings.stop)
        if settings.top_logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = settings.top_logprobs
        if settings.repetition_penalty is not None:  # a vLLM extension of the OpenAI API
            body["repetition_penalty"] = settings.repetition_penalty
        if self.spec.extra_body:
            body.update(self.spec.extra_body)
        return json.dumps(body, ensure_ascii=False).encode()

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        session = self._open()
        payload = self._body(messages, settings)
        index = self._pick(messages)
        self._in_flight[index] += 1
        try:
            async with session.post(self._urls[index], data=payload) as response:
                status = response.status
                raw = await response.read()
                headers = response.headers
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
            raise self._error(index, "timeout", f"timed out ({type(exc).__name__})") from None
        except aiohttp.InvalidURL as exc:
            raise self._error(index, "bad_request", f"invalid URL: {exc}") from None
        except aiohttp.ClientPayloadError as exc:
            raise self._error(index, "connection", f"reply cut short: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self._error(index, "connection", f"{type(exc).__name__}: {exc}") from None
        finally:
            self._in_flight[index] -= 1
        if status != 200:
            raise self._status_error(index, status, raw, headers)
        return self._parse(index, raw, settings)

    def _parse(self, index: int, raw: bytes, settings: GenerateSettings) -> Completion:
        try:
            data = json.loads(raw)
        except ValueError:
            raise self._error(
                index, "malformed", f"reply is not JSON: {_server_message(raw)[:120]}"
            ) from None
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._error(
                index, "malformed", f"reply lacks choices[0].message: {_server_message(raw)[:120]}"
            ) from None
        if not isinstance(text, str):
            raise self._error(index, "malformed", "reply content is not a string")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        top: list[tuple[str, float]] | None = None
        if settings.top_logprobs is not None:
            top = _first_token_alternatives(choice.get("logprobs"))
        return Completion(
            text=text,
            reasoning=reasoning if isinstance(reasoning, str) else None,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
            top_logprobs=top,
        )

    def _status_error(
        self, index: int, status: int, raw: bytes, headers: Mapping[str, str]
    ) -> BackendError:
        message = _server_message(raw)
        lowered = message.lower()
        if status == 429:
            retry_after = retry_after_seconds(headers.get("Retry-After"))
            if retry_after is None:
                retry_ms = retry_after_seconds(headers.get("retry-after-ms"))
                retry_after = retry_ms / 1000 if retry_ms is not None else None
            return self._error(index, "rate_limit", f"HTTP 429: {message}", retry_after)
        if status >= 500:
            return self._error(index, "server", f"HTTP {status}: {message}")
        if status == 404 or "does not exist" in lowered:
            base = self._bases[index]
            return self._error(
                index,
                "not_found",
                f"HTTP {status}: model {self.spec.model!r} is not served at {base} ({message}); "
                f"check the server's --served-model-name / --lora-modules, or GET {base}/models",
            )
        if status in (401, 403):
            hint = f" (is ${self.spec.api_key_env} the server's --api-key?)"
            return self._error(index, "auth", f"HTTP {status}: {message}{hint}")
        if status == 408:
            return self._error(index, "timeout", f"HTTP 408: {message}")
        if status in (400, 413, 422) and any(hint in lowered for hint in _CONTEXT_HINTS):
            return self._error(index, "context_length", f"HTTP {status}: {message}")
        if 400 <= status < 500:
            return self._error(index, "bad_request", f"HTTP {status}: {message}")
        return self._error(index, "malformed", f"unexpected HTTP {status}: {message}")

    def _error(
        self, index: int, kind: str, detail: str, retry_after: float | None = None
    ) -> BackendError:
        if kind in ("connection", "timeout", "server"):
            # A replica in trouble loses its calls' affinity for a while, so that retries go
            # elsewhere instead of to the same failing home.
            self._avoid_until[index] = time.monotonic() + AVOID_AFTER_FAILURE_S
        text = f"{self.name}: {detail} [{self._bases[index]}]"
        # BackendError redacts the key (named by api_key_env) if the server quoted it back.
        return BackendError(" ".join(text.split()), kind=kind, retry_after=retry_after)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def _first_token_alternatives(logprobs: Any) -> list[tuple[str, float]] | None:
    """`choices[0].logprobs.content[0].top_logprobs` as [(token, logprob)], most likely first."""
    try:
        first = logprobs["content"][0]
        found = [(str(t["token"]), float(t["logprob"])) for t in first["top_logprobs"]]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    found.sort(key=lambda pair: -pair[1])
    return found
