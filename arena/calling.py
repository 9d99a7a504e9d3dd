"""Calling models: concurrency limits, timeouts, retries, and a record of every attempt.

This is the only place that retries. A backend raises `BackendError` and says whether the error
is retryable (`Backend.should_retry`); here tenacity retries those with full-jitter exponential
backoff, honouring a server's Retry-After, bounded in attempts and in total time. Each attempt holds
a slot of the global limit and of its model's limit only while it runs, not while it backs off.
A model's rate limits (requests and tokens per minute) are waited for before each attempt.
Every attempt, failed or not, becomes a row of `calls`; a failed one's error text is the
`BackendError`'s message, which is redacted when the error is made (`arena.core.redact`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

from arena.backends.base import Backend, BackendSpec, Completion, GenerateSettings, Message
from arena.config import RetrySettings
from arena.core.errors import BackendError, as_backend_error
from arena.core.ids import content_id, request_hash
from arena.core.redact import is_clean
from arena.records import CallRow

RecordCall = Callable[[CallRow], None]


@dataclass
class CallStats:
    """Running totals, read by the progress display."""

    calls: int = 0
    failed_attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CallResult:
    completion: Completion
    call_id: str
    latency_s: float


@dataclass
class RateLimit:
    """Requests and tokens per minute for one model (aiolimiter leaky buckets)."""

    requests: AsyncLimiter | None
    tokens: AsyncLimiter | None
    tokens_per_minute: float

    @classmethod
    def for_spec(cls, spec: BackendSpec) -> RateLimit | None:
        rpm, tpm = spec.requests_per_minute, spec.tokens_per_minute
        if rpm is None and tpm is None:
            return None
        return cls(
            AsyncLimiter(rpm, 60) if rpm else None,
            AsyncLimiter(tpm, 60) if tpm else None,
            tpm or 0.0,
        )

    async def acquire(self, messages: list[Message], settings: GenerateSettings) -> None:
        if self.requests is not None:
            await self.requests.acquire()
        if self.tokens is not None:
            estimate = sum(len(m.content) for m in messages) // 4 + settings.max_tokens
            await self.tokens.acquire(min(float(estimate), self.tokens_per_minute))


class Caller:
    """Calls models by config name, with limits, retries and recording."""

    def __init__(
        self,
        backends: dict[str, Backend],
        *,
        max_concurrency: int,
        request_timeout_s: float,
        retry: RetrySettings,
        record: RecordCall,
        run_id: str,
        before_each: Callable[[], None] | None = None,
    ):
        self.backends = backends
        self._global = asyncio.Semaphore(max_concurrency)
        self._per_model = {
            name: asyncio.Semaphore(backend.spec.max_concurrency)
            for name, backend in backends.items()
        }
        self._rate = {
            name: limit
            for name, backend in backends.items()
            if (limit := RateLimit.for_spec(backend.spec)) is not None
        }
        self._timeout = request_timeout_s
        self._retry = retry
        self._record = record
        self._run_id = run_id
        self._before_each = before_each
        self.stats = CallStats()

    def _backoff(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        Full jitter: uniform in [0, min(max, initial * 2^(attempt-1))]; a server's Retry-After wins.
        """
        if isinstance(error, BackendError) and error.retry_after is not None:
            return max(error.retry_after, 0.0)
        policy = self._retry
        cap = min(policy.max_backoff_s, policy.initial_backoff_s * 2 ** (attempt - 1))
        return random.uniform(0.0, cap)

    async def call(
        self,
        model: str,
        messages: list[Message],
        settings: GenerateSettings,
        *,
        purpose: str,
        debate_id: str | None,
        before_send: Callable[[], None] | None = None,
        accept: Callable[[Completion], str | None] | None = None,
    ) -> CallResult:
        """Call `model` until it succeeds or a non-retryable error or the retry budget ends it.

        Raises the last `BackendError` when the call gives up. `before_send` runs once the call
        holds its slots, just before it is sent; it may raise to cancel the call. `accept` says
        what is wrong with a completion (None: nothing); a completion it rejects is a failed
        attempt of kind `malformed`, recorded and retried like one (an empty reply, say).
        """
        backend = self.backends[model]
        request = request_hash(backend.name, [m.as_dict() for m in messages], settings.as_dict())
        started = time.monotonic()
        # The first attempt runs outside tenacity: most calls succeed at once, and at a thousand
        # calls a second tenacity's per-call set-up is a measurable share of the engine's time.
        try:
            return await self._attempt(
                model, messages, settings, request, 1, purpose, debate_id, before_send, accept
            )
        except BackendError as error:
            if self._retry.max_attempts == 1 or not backend.should_retry(error):
                raise
            first_error = error
        await asyncio.sleep(self._backoff(1, first_error))
        remaining_s = max(self._retry.max_total_s - (time.monotonic() - started), 0.0)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_attempts - 1) | stop_after_delay(remaining_s),
            wait=lambda state: self._backoff(
                state.attempt_number + 1, state.outcome.exception() if state.outcome else None
            ),
            retry=retry_if_exception(backend.should_retry),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number + 1
                return await self._attempt(
                    model, messages, settings, request, number, purpose, debate_id, None, accept
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(
        self,
        model: str,
        messages: list[Message],
        settings: GenerateSettings,
        request_hash: str,
        attempt: int,
        purpose: str,
        debate_id: str | None,
        before_send: Callable[[], None] | None = None,
        accept: Callable[[Completion], str | None] | None = None,
    ) -> CallResult:
        backend = self.backends[model]
        # The same request can be made by several debates (an opening does not depend on the
        # opponent): the call's id says which debate made it, and which attempt it was.
        call_id = content_id(request_hash, debate_id, purpose, attempt)
        started_at = datetime.now(UTC).replace(tzinfo=None)
        # Every row has every column, so that the writer batches them into one statement.
        row = CallRow(
            call_id=call_id,
            request_hash=request_hash,
            attempt=attempt,
            run_id=self._run_id,
            debate_id=debate_id,
            purpose=purpose,
            model=backend.name,
            started_at=started_at,
        )
        rate = self._rate.get(model)
        if rate is not None:
            await rate.acquire(messages, settings)
        async with self._global, self._per_model[model]:
            if before_send is not None:
                before_send()
            if self._before_each is not None:
                self._before_each()
            start = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout):
                    completion = await backend.generate(messages, settings)
                problem = accept(completion) if accept is not None else None
                if problem is not None:
                    raise BackendError(problem, kind="malformed")
            except (Exception, TimeoutError) as exc:
                error = as_backend_error(exc)  # its message is redacted (arena.core.redact)
                row.latency_s = time.perf_counter() - start
                row.error = str(error)[:2000]
                row.error_kind = error.kind
                row.retryable = backend.should_retry(error)
                self.stats.failed_attempts += 1
                self.stats.by_kind[error.kind] = self.stats.by_kind.get(error.kind, 0) + 1
                self._record(row)
                # The original exception stays as the cause, for a traceback, unless its own
                # text holds a secret: a traceback prints causes as they are.
                keep = error is not exc and is_clean(str(exc))
                raise error from (exc if keep else None)
            latency = time.perf_counter() - start
        if completion.latency_s is None:
            completion.latency_s = latency
        row.prompt_tokens = completion.prompt_tokens
        row.completion_tokens = completion.completion_tokens
        row.cost_usd = completion.cost_usd
        row.latency_s = completion.latency_s
        row.finish_reason = completion.finish_reason
        stats = self.stats
        stats.calls += 1
        stats.prompt_tokens += completion.prompt_tokens or 0
        stats.completion_tokens += completion.completion_tokens or 0
        stats.cost_usd += completion.cost_usd or 0.0
        self._record(row)
        return CallResult(completion, call_id, completion.latency_s)
