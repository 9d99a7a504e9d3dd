"""The judge behind training rewards: `RewardJudge`, a `pairing.pcp_rewards.JudgeClient` that
sends its calls through the engine and records them.

`RewardJudge(judge, store, run_id=...)` takes a judge model (a `JudgeRole`, as a `judges:` entry
of models.yaml reads, or a bare provider spec) and an open `Store`, and:

- registers a run of kind `reward` (`runs` and `models` rows; a rerun with the same `run_id`
  continues it, and refuses a judge defined differently under the same name), so that a training
  run's judging is one run: its cost is
  `select sum(cost_usd) from calls where run_id = ?` (`recorded_cost()` runs it);
- sends every request through `arena.calling.Caller`: the global limit (`max_concurrency`) and
  the judge's own (`max_concurrency` in its spec), its rate limits, the request timeout, and
  retries with backoff for retryable errors. A call that still fails raises `BackendError`, which
  the rewards count and replace by a group mean. Each attempt is a `calls` row (`purpose` as the
  reward names it, `reward_anchored`, `reward_helpfulness`, with `_repair` for a repair request;
  `debate_id` names the judgement, `<session>-<n>`: the judge object's session and a sequence
  number, so that no two judgements share a row, whether a failed request is asked again, the
  cache is off, or a second training process asks what the first did);
- caches replies by request (`request_hash`: model, messages, generation settings, as
  `calls.request_hash`), in memory, for the life of the object: a completion judged again (GRPO
  often samples the same short answer twice, in a step or across steps) costs no second call,
  and identical requests in flight at once share one call. The `calls` table holds no reply text,
  so the cache is not read back from the store: a new process starts with an empty cache.

It holds no event loop of its own: use it from one loop (TRL runs async reward functions on one
loop for the trainer's life; `pairing.pcp_rewards.synchronous` gives a synchronous trainer one).
The store's writer thread takes the rows from whatever thread the loop runs in. No call is sent
once the store's writer has failed (`before_each`): its `WriteError` propagates out of the reward,
which stops training rather than paying for judgements that could not be recorded.

    from storage import Store
    from arena.config import JudgeRole
    from arena.judges.reward_client import RewardJudge
    from pairing.pcp_rewards import pct_reward

    store = Store.open("judging.duckdb")
    judge = RewardJudge(JudgeRole.model_validate(entry), store, run_id="grpo-pct-1")
    trainer = GRPOTrainer(..., reward_funcs=[pct_reward(judge)])

With `budget_usd`, no call is sent once the run's spend (what the store recorded for the run when
the object was made, a resumed run's earlier spend included, plus this object's calls) has
reached it: the call raises `BudgetReached`, which the rewards let through, so training stops
(`arena train grpo` exits with code 3; a rerun with a higher budget resumes). Calls already in
flight finish, so the spend can pass the budget by at most those.

Simplified on purpose: the judge role's debate options (`verdict`, `swap_check`,
`average_orders`) do not apply and are ignored; the cache has no size bound (a training run's
distinct requests, a few kilobytes of reply each).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final

from arena.backends import Backend, BackendSpec, GenerateSettings, Message, create_backend
from arena.calling import Caller, CallStats
from arena.config import JudgeRole, RetrySettings
from arena.core.clock import now
from arena.core.errors import BudgetReached, UserError
from arena.core.ids import content_id, request_hash
from arena.records import CallRow
from arena.runs import stored_spec, write_models, write_run
from storage import Store

RUN_KIND: Final = "reward"
"""`runs.kind` of a reward-judging run."""
DEFAULT_MAX_TOKENS: Final = 400
"""Max new tokens per judgement when the judge's params do not say."""


def default_reward_run_id(judge: str, created_at: datetime) -> str:
    """A new run id for judging with `judge`, from the time it starts."""
    return "reward-" + content_id(RUN_KIND, judge, created_at.isoformat(), length=12)


def judge_settings(role: JudgeRole, max_tokens: int) -> GenerateSettings:
    """The generation settings of every judgement: the judge's params, `max_tokens` when its
    params set none."""
    params = role.params
    return GenerateSettings(
        max_tokens=params.max_tokens or max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed,
        stop=tuple(params.stop),
        repetition_penalty=params.repetition_penalty,
        no_repeat_ngram_size=params.no_repeat_ngram_size,
    )


def record_reward_run(
    store: Store,
    run_id: str,
    role: JudgeRole,
    settings: GenerateSettings,
    *,
    config: Mapping[str, Any],
    command: str | None,
    created_at: datetime,
) -> None:
    """Write (or continue) the run's `runs` row and its judge's `models` row.

    Raises `UserError` if `run_id` is a run of another kind, or its judge of the same name was
    defined differently."""
    spec = stored_spec(role)
    rows = store.read("select kind from runs where run_id = ?", [run_id])
    if rows and rows[0][0] != RUN_KIND:
        raise UserError(f"run {run_id!r} is a {rows[0][0]} run, not a {RUN_KIND} run")
    for (stored,) in store.read(
        "select spec from models where run_id = ? and role = 'judge' and name = ?",
        [run_id, role.name],
    ):
        if json.loads(stored) != json.loads(json.dumps(spec)):
            raise UserError(
                f"judge {role.name!r} is defined differently from when run {run_id!r} started;"
                " give it a new name or start another run"
            )
    write_run(
        store,
        run_id=run_id,
        kind=RUN_KIND,
        config={**config, "judge": spec},
        command=command,
        created_at=created_at,
        seed=settings.seed or 0,
        turns=1,
        replicates=1,
        max_tokens=settings.max_tokens,
    )
    write_models(store, run_id, [("judge", role, spec)])


class RewardJudge:
    """A judge model for reward functions: calls through the engine, recorded, cached (module
    docstring). Implements `pairing.pcp_rewards.JudgeClient`."""

    def __init__(
        self,
        judge: JudgeRole | BackendSpec,
        store: Store,
        *,
        run_id: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        max_concurrency: int = 64,
        request_timeout_s: float = 300.0,
        retry: RetrySettings | None = None,
        cache: bool = True,
        config: Mapping[str, Any] | None = None,
        command: str | None = None,
        budget_usd: float | None = None,
    ):
        """`judge`: the judge model. `max_tokens`: per judgement, unless the judge's params set
        it. `max_concurrency`: calls in flight at once (the judge's own `max_concurrency` bounds
        them too). `request_timeout_s`, `retry`: per attempt, and the retry policy (the engine's
        defaults). `cache`: reuse the reply to a request already made. `config`: more settings to
        record in `runs.config` (the training run's, say). `command`: `runs.command`.
        `budget_usd`: send no call once the run has spent this much (module docstring)."""
        self.role = judge if isinstance(judge, JudgeRole) else JudgeRole(provider=judge)
        self.name = self.role.name
        """The judge's name (`calls.model`)."""
        self.store = store
        created_at = now()
        self.run_id = run_id or default_reward_run_id(self.name, created_at)
        """The run every call is recorded under."""
        self.settings = judge_settings(self.role, max_tokens)
        retry = retry or RetrySettings()
        record_reward_run(
            store,
            self.run_id,
            self.role,
            self.settings,
            config={
                **(config or {}),
                "max_concurrency": max_concurrency,
                "request_timeout_s": request_timeout_s,
                "retry": retry.model_dump(mode="json"),
                "cache": cache,
                "budget_usd": budget_usd,
            },
            command=command,
            created_at=created_at,
        )
        self.backend: Backend = create_backend(self.role)
        self.caller = Caller(
            {self.name: self.backend},
            max_concurrency=max_concurrency,
            request_timeout_s=request_timeout_s,
            retry=retry,
            record=self._record,
            run_id=self.run_id,
            before_each=self._before_each,
        )
        self.budget_usd = budget_usd
        self._spent_before = self.recorded_cost() if budget_usd is not None else 0.0
        self.session = content_id(
            "reward-session", self.run_id, created_at.isoformat(), os.getpid()
        )
        """The prefix of this object's `calls.debate_id`s."""
        self._sent = itertools.count(1)
        self.cache = cache
        self.cache_hits = 0
        """Requests answered from the cache (or by a call already in flight)."""
        self._replies: dict[str, str] = {}
        self._pending: dict[str, asyncio.Future[str]] = {}

    def _before_each(self) -> None:
        self.store.writer.check()
        if self.budget_usd is not None and self.spent() >= self.budget_usd:
            raise BudgetReached(
                f"the judge's budget of ${self.budget_usd:g} is spent (${self.spent():.4f})"
            )

    def spent(self) -> float:
        """The run's spend in USD: recorded before this object, plus this object's calls."""
        return self._spent_before + self.caller.stats.cost_usd

    def _record(self, row: CallRow) -> None:
        self.store.writer.insert(row.TABLE, row.row(), on_conflict="update")

    @property
    def calls(self) -> CallStats:
        """Running totals of this process's calls: successes, failed attempts, tokens, cost."""
        return self.caller.stats

    async def complete(self, messages: list[Message], *, purpose: str) -> str:
        """The judge's reply to `messages`; raises `BackendError` when the call fails for good."""
        if not self.cache:
            return await self._call(messages, purpose)
        key = request_hash(self.name, [m.as_dict() for m in messages], self.settings.as_dict())
        reply = self._replies.get(key)
        if reply is not None:
            self.cache_hits += 1
            return reply
        pending = self._pending.get(key)
        if pending is not None:
            self.cache_hits += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            reply = await self._call(messages, purpose)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: the waiters, if any, get it; no "never retrieved" log
            raise
        finally:
            del self._pending[key]
        self._replies[key] = reply
        future.set_result(reply)
        return reply

    async def _call(self, messages: list[Message], purpose: str) -> str:
        judgement = f"{self.session}-{next(self._sent)}"
        result = await self.caller.call(
            self.name, messages, self.settings, purpose=purpose, debate_id=judgement
        )
        return result.completion.text

    def recorded_cost(self) -> float:
        """The run's recorded cost in USD, every process's calls included (0.0 when the provider
        reports none)."""
        rows = self.store.read("select sum(cost_usd) from calls where run_id = ?", [self.run_id])
        return float(rows[0][0] or 0.0) if rows else 0.0

    def finish(self, status: str = "complete") -> None:
        """Mark the run `status` ('complete', 'interrupted', 'incomplete') and flush its rows."""
        self.store.execute(
            "update runs set status = ?, updated_at = ? where run_id = ?",
            [status, now(), self.run_id],
        )

    async def aclose(self) -> None:
        """Release the backend's connections (on the loop the calls ran on)."""
        await self.backend.aclose()

    async def __aenter__(self) -> RewardJudge:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the backend; mark the run complete, or interrupted when an error ended it."""
        await self.aclose()
        self.finish("complete" if exc_type is None else "interrupted")
