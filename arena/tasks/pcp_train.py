"""The PCT-prompt task: one unit is one topic, taken through the generator's steps and recorded.

For each topic (`arena.protocol.pcp_train` has the messages and the reply parsers):

1. `classify`: does it have a clear left/right dimension, and each side's usual view; a topic
   without one (or whose classification cannot be read) is finished there;
2. for a kept topic, at once: `left_anchor` and `right_anchor` (a neutral-looking answer to
   "Tell me about <topic>" slanted to each side, written by the anchor generator, by default the
   generator itself) and `helpfulness` (four "Tell me how good/bad ..." requests).

Each step is one call, or two when a JSON step's first reply cannot be read (one repair request),
and becomes one `pcp_train_steps` row as soon as its reply is read, after its `calls` row
(storage/migrations/0006_pcp_train.sql, docs/schema.md). Resuming reads the steps the store holds
for a chunk of the plan and asks only for the missing ones: a topic cut short after its
classification and one anchor asks for the other anchor and the requests, nothing more. A step
whose call failed leaves no row, so a rerun asks again; a step whose reply gave nothing usable
(`problem` 'unreadable' or 'truncated') has its row and is not asked again in the run (the same
request would get the same reply: start another run, `--run` or `--seed`, to ask anew).

A run (`runs` with kind 'pcp_train'; `models` with roles 'generator' and 'anchor_generator') is
checked before it continues (`check_run`): the settings that change what a step's reply means
(`PROTOCOL_FIELDS`) and each generator's definition must be those it started with. More topics
extend it. The default run id is derived from the generators' names and those settings, so that
the same command continues the same run and another generator starts another.

Simplified on purpose: a model's `persona` is not used (the anchor step has its own system
prompt); a generator's replies are trusted as to content, checked only for their shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, Field, ValidationError

from arena.backends import Backend, GenerateSettings, create_backend
from arena.backends.base import INT32_MAX, INT64_MAX, INT64_MIN, STRICT_CONFIG
from arena.calling import CallResult
from arena.config.errors import flag_problem
from arena.config.schema import ContestantRole, RetrySettings
from arena.core.clock import now
from arena.core.errors import ConfigError, UserError
from arena.core.ids import content_id
from arena.core.messages import Message
from arena.protocol.pcp_train import (
    Classification,
    HelpfulnessPrompts,
    Side,
    Step,
    TopicResult,
    anchor_messages,
    classify_messages,
    helpfulness_messages,
    parse_anchor,
    parse_classification,
    parse_helpfulness_prompts,
    repair_messages,
)
from arena.runner import RunContext, Task
from arena.runs import check_settings, write_models, write_run
from arena.tasks.debate import generate_settings
from storage import Store

KIND = "pcp_train"
"""The `runs.kind` of a PCT-prompt run."""
PURPOSE = "pcp_train"
"""The `calls.purpose` of a generator's call."""
GENERATOR, ANCHOR_GENERATOR = "generator", "anchor_generator"
"""The `models.role` of the model that classifies and writes requests, and of the one that
writes the anchors (the same model, by default)."""

PROTOCOL_FIELDS = ("seed", "max_tokens", "json_max_tokens")
"""Settings that change what a step's reply means: a run keeps them (`check_run`), and the
default run id is derived from them."""

_FLAGS = {"max_concurrency": "--concurrency"}

T = TypeVar("T")


class PCTSettings(BaseModel):
    """Settings of a PCT-prompt run (flags of `arena pcp build-train`)."""

    model_config = STRICT_CONFIG

    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX)
    """Sampling seed of every call (a model's `params.seed` overrides it)."""
    max_tokens: int = Field(1024, ge=1, le=INT32_MAX)
    """Max new tokens of an anchor (a model's `params.max_tokens` overrides it). The published
    anchors average about 2,800 characters, some 600-700 tokens."""
    json_max_tokens: int = Field(512, ge=1, le=INT32_MAX)
    """Max new tokens of a classification or a set of requests (`params.max_tokens` overrides
    it; a reasoning model needs more)."""
    limit: int | None = Field(None, ge=1, le=INT32_MAX)
    """Only the first N topics of the list (after the evaluation topics are left out)."""
    max_concurrency: int = Field(16, ge=1, le=INT32_MAX)
    """Calls in flight at once, over both generators."""
    budget_usd: float | None = Field(None, gt=0)
    """Start no new topic once the run has spent this much."""
    request_timeout_s: float = Field(300.0, gt=0)
    """Time limit of one call attempt."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    """Retry policy."""

    def protocol(self) -> dict[str, Any]:
        """The settings a run keeps (`PROTOCOL_FIELDS`)."""
        return {name: getattr(self, name) for name in PROTOCOL_FIELDS}


def resolve_settings(flags: Mapping[str, Any]) -> PCTSettings:
    """The defaults overridden by the flags that were given (None: not given)."""
    try:
        return PCTSettings.model_validate({k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError("command line", *flag_problem(exc, _FLAGS)) from None


@dataclass(frozen=True)
class Generators:
    """The models of a run: one classifies and writes requests, one writes anchors."""

    generator: ContestantRole
    anchors: ContestantRole

    def roles(self) -> list[tuple[str, ContestantRole]]:
        return [(GENERATOR, self.generator), (ANCHOR_GENERATOR, self.anchors)]


# ---------------------------------------------------------------- units, state and the plan


@dataclass(frozen=True)
class PCTUnit:
    """One topic to take through the steps."""

    topic_id: str
    topic: str


def topic_id(run_id: str, topic: str) -> str:
    """The content-derived id of a topic within a run (`pcp_train_steps.topic_id`)."""
    return content_id(KIND, run_id, topic)


def plan(run_id: str, topics: Sequence[str]) -> list[PCTUnit]:
    """One unit per topic, in the list's order."""
    return [PCTUnit(topic_id(run_id, t), t) for t in topics]


@dataclass(frozen=True)
class StepRecord:
    """A recorded step: what was read (None: nothing usable), and why not."""

    value: Any
    problem: str | None


TopicState = dict[str, StepRecord]
"""A topic's recorded steps, by step name."""


def _classification(state: Mapping[str, StepRecord]) -> Classification | None:
    record = state.get("classify")
    if record is None or record.value is None:
        return None
    return Classification.from_value(record.value)


def is_finished(state: Mapping[str, StepRecord] | None) -> bool:
    """Whether a topic needs no more calls: classified as having no divide (or unreadably),
    or kept with all three later steps recorded."""
    if not state or "classify" not in state:
        return False
    found = _classification(state)
    if found is None or not found.clear_divide:
        return True
    return all(step in state for step in ("left_anchor", "right_anchor", "helpfulness"))


async def _together(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await `calls` concurrently; each runs to its end (what it records stays recorded), then
    the first exception, if any, is raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


def recorded_steps(store: Store, run_id: str, units: Sequence[PCTUnit]) -> dict[str, TopicState]:
    """The steps stored for `units`, each with its `calls` row, by topic id."""
    ids = [u.topic_id for u in units]
    states: dict[str, TopicState] = {}
    for tid, step, value, problem in store.read(
        "select s.topic_id, s.step, s.value, s.problem from pcp_train_steps s"
        " join calls c on c.call_id = s.call_id"
        " where s.run_id = ? and s.topic_id in (select unnest(?))",
        [run_id, ids],
    ):
        parsed = None if value is None else json.loads(value)
        states.setdefault(tid, {})[step] = StepRecord(parsed, problem)
    return states


# ---------------------------------------------------------------- the task


class PCTTask(Task[PCTUnit, TopicState]):
    """Take every topic through the generator's steps; record each step."""

    unit_name: ClassVar[str] = "topic"
    step_name: ClassVar[str] = "step"

    def __init__(
        self, generators: Generators, settings: PCTSettings, store: Store, run_id: str
    ) -> None:
        self.generators = generators
        self.settings = settings
        self.store = store
        self.run_id = run_id

    def backends(self) -> dict[str, Backend]:
        """The backends the task calls, by model name."""
        roles = {role.name: role for _, role in self.generators.roles()}
        return {name: create_backend(role.provider) for name, role in roles.items()}

    def _settings(self, role: ContestantRole, max_tokens: int) -> GenerateSettings:
        return generate_settings(role.params, max_tokens, self.settings.seed, 0)

    # --- the Task interface ----------------------------------------------------------------------

    def unit_id(self, unit: PCTUnit) -> str:
        return unit.topic_id

    def register(self, units: Sequence[PCTUnit]) -> None:
        """Nothing to write: a topic is recorded with its steps."""

    def recorded(self, units: Sequence[PCTUnit]) -> Mapping[str, TopicState]:
        return recorded_steps(self.store, self.run_id, units)

    def finished(self, unit: PCTUnit, state: TopicState | None) -> bool:
        return is_finished(state)

    def failed(self, unit: PCTUnit, error: str) -> None:
        """Nothing more to write: the failed attempts are in `calls`, and a missing step row
        means the next run asks again."""

    def not_started(self, unit: PCTUnit) -> None:
        """Nothing to write: a step not asked has no row."""

    async def play(self, unit: PCTUnit, state: TopicState | None, ctx: RunContext) -> None:
        steps: TopicState = dict(state or {})
        # The budget is checked before the unit's first call of this session only, so that a
        # topic under way is finished.
        check: Callable[[], None] | None = ctx.check_budget
        if "classify" not in steps:
            steps["classify"] = await self._classify(unit, ctx, check)
            check = None
        found = _classification(steps)
        if found is None or not found.clear_divide:
            return
        left, right = found.left_view or "", found.right_view or ""
        todo: list[Awaitable[StepRecord]] = []  # started together: each may be the first call
        if "left_anchor" not in steps:
            todo.append(self._anchor(unit, "left", left, ctx, check))
        if "right_anchor" not in steps:
            todo.append(self._anchor(unit, "right", right, ctx, check))
        if "helpfulness" not in steps:
            todo.append(self._requests(unit, left, right, ctx, check))
        await _together(todo)

    # --- the steps -------------------------------------------------------------------------------

    async def _classify(
        self, unit: PCTUnit, ctx: RunContext, check: Callable[[], None] | None
    ) -> StepRecord:
        return await self._json_step(
            unit,
            "classify",
            classify_messages(unit.topic),
            lambda reply: _value(parse_classification(reply)),
            ctx,
            check,
        )

    async def _requests(
        self,
        unit: PCTUnit,
        left_view: str,
        right_view: str,
        ctx: RunContext,
        check: Callable[[], None] | None,
    ) -> StepRecord:
        return await self._json_step(
            unit,
            "helpfulness",
            helpfulness_messages(unit.topic, left_view, right_view),
            lambda reply: _value(parse_helpfulness_prompts(reply)),
            ctx,
            check,
        )

    async def _json_step(
        self,
        unit: PCTUnit,
        step: Step,
        messages: list[Message],
        read: Callable[[str], dict[str, Any] | None],
        ctx: RunContext,
        check: Callable[[], None] | None,
    ) -> StepRecord:
        """Ask the generator; if the reply cannot be read, ask once more to repair it."""
        role = self.generators.generator
        settings = self._settings(role, self.settings.json_max_tokens)
        result = await ctx.caller.call(
            role.name,
            messages,
            settings,
            purpose=PURPOSE,
            debate_id=unit.topic_id,
            before_send=check,
        )
        value = read(result.completion.text)
        repaired = value is None
        if repaired:
            again = repair_messages(messages, result.completion.text, step)
            result = await ctx.caller.call(
                role.name, again, settings, purpose=PURPOSE, debate_id=unit.topic_id
            )
            value = read(result.completion.text)
        problem = None if value is not None else "unreadable"
        return self._record(unit, step, role.name, result, value, problem, repaired, ctx)

    async def _anchor(
        self,
        unit: PCTUnit,
        side: Side,
        view: str,
        ctx: RunContext,
        check: Callable[[], None] | None,
    ) -> StepRecord:
        role = self.generators.anchors
        result = await ctx.caller.call(
            role.name,
            anchor_messages(unit.topic, side, view or None),
            self._settings(role, self.settings.max_tokens),
            purpose=PURPOSE,
            debate_id=unit.topic_id,
            before_send=check,
        )
        text = parse_anchor(result.completion.text)
        problem = None
        if text is None:
            problem = "unreadable"
        elif result.completion.finish_reason == "length":
            problem, text = "truncated", None
        step: Step = "left_anchor" if side == "left" else "right_anchor"
        return self._record(unit, step, role.name, result, text, problem, False, ctx)

    def _record(
        self,
        unit: PCTUnit,
        step: Step,
        model: str,
        result: CallResult,
        value: Any,
        problem: str | None,
        repaired: bool,
        ctx: RunContext,
    ) -> StepRecord:
        """Queue the step's row (after its call's: the writer keeps a prefix of what was
        queued, so a step never refers to a call the store lost)."""
        completion = result.completion
        row = {
            "run_id": self.run_id,
            "topic_id": unit.topic_id,
            "topic": unit.topic,
            "step": step,
            "model": model,
            "raw_text": completion.text,
            "value": None if value is None else json.dumps(value, ensure_ascii=False),
            "problem": problem,
            "repaired": repaired,
            "finish_reason": completion.finish_reason,
            "call_id": result.call_id,
            "created_at": now(),
        }
        self.store.writer.insert("pcp_train_steps", row, on_conflict="ignore")
        ctx.progress.steps += 1
        return StepRecord(value, problem)


def _value(found: Classification | HelpfulnessPrompts | None) -> dict[str, Any] | None:
    return None if found is None else found.value()


# ---------------------------------------------------------------- reading results back


@dataclass
class Outcome:
    """What the store holds for the planned topics, counted."""

    results: list[TopicResult]
    """The kept topics', in plan order."""
    planned: int = 0
    classified: int = 0
    kept: int = 0
    no_divide: int = 0
    unreadable: int = 0
    """Steps recorded with nothing usable (`problem` 'unreadable')."""
    truncated: int = 0
    """Anchors cut off at the token limit."""
    unfinished: int = 0
    """Topics still missing a step (a failed call, an interruption, the budget)."""


def stored_outcome(store: Store, run_id: str, units: Sequence[PCTUnit]) -> Outcome:
    """The planned topics' results and counts, read from the store (in chunks)."""
    outcome = Outcome(results=[], planned=len(units))
    for chunk in _chunks(units, 1024):
        states = recorded_steps(store, run_id, chunk)
        for unit in chunk:
            state = states.get(unit.topic_id, {})
            if not is_finished(state):
                outcome.unfinished += 1
            for record in state.values():
                outcome.unreadable += record.problem == "unreadable"
                outcome.truncated += record.problem == "truncated"
            if "classify" not in state:
                continue
            outcome.classified += 1
            found = _classification(state)
            if found is None:
                continue
            if not found.clear_divide:
                outcome.no_divide += 1
                continue
            outcome.kept += 1
            left, right, asked = (
                state.get(s) for s in ("left_anchor", "right_anchor", "helpfulness")
            )
            prompts = asked.value if asked is not None else None
            outcome.results.append(
                TopicResult(
                    unit.topic,
                    left.value if left is not None else None,
                    right.value if right is not None else None,
                    HelpfulnessPrompts.from_value(prompts) if prompts is not None else None,
                )
            )
    return outcome


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- the run's rows


def default_run_id(generators: Generators, settings: PCTSettings) -> str:
    """`pct-<hash of the generators' names and the protocol settings>`."""
    names = [generators.generator.name, generators.anchors.name]
    return "pct-" + content_id(KIND, names, settings.protocol(), length=8)


def stored_spec(role: ContestantRole) -> dict[str, Any]:
    """A generator as `models.spec` stores it: its provider settings."""
    return role.provider.model_dump(mode="json")


def _identity(backend: str, model: str | None, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change under a generator's name within a run."""
    return {"backend": backend, "model": model, "params": spec.get("params")}


def check_run(store: Store, generators: Generators, settings: PCTSettings, run_id: str) -> bool:
    """Refuse to continue `run_id` with other protocol settings or other generators (another
    name, or one defined differently); True if the run exists."""
    if not check_settings(store, run_id, KIND, "a PCT-prompt run", settings.protocol()):
        return False
    known = {
        role: (name, _identity(backend, model, json.loads(spec)))
        for role, name, backend, model, spec in store.read(
            "select role, name, backend, model, spec from models where run_id = ?", [run_id]
        )
    }
    for role_name, role in generators.roles():
        if role_name not in known:
            continue
        old_name, old_identity = known[role_name]
        if old_name != role.name:
            raise UserError(
                f"run {run_id!r} was started with {old_name!r} as its {role_name}, and this "
                f"command names {role.name!r}; start another --run"
            )
        new_identity = _identity(role.provider.backend, role.provider.model_id(), stored_spec(role))
        if new_identity != old_identity:
            changed = ", ".join(k for k in new_identity if new_identity[k] != old_identity[k])
            raise UserError(
                f"model {role.name!r} is defined differently from when run {run_id!r} started "
                f"({changed} changed); give it a new name or start another --run"
            )
    return True


def record_run(
    store: Store,
    generators: Generators,
    settings: PCTSettings,
    run_id: str,
    inputs: Mapping[str, Any],
    command: str,
    created_at: datetime,
) -> None:
    """Write (or refresh) the run's row and its generators (`inputs`: the files and counts the
    command was given, kept in `runs.config`)."""
    resolved = {
        "settings": settings.model_dump(mode="json"),
        **inputs,
        "models": {role: stored_spec(r) for role, r in generators.roles()},
    }
    write_run(
        store,
        run_id=run_id,
        kind=KIND,
        config=resolved,
        command=command,
        created_at=created_at,
        seed=settings.seed,
        turns=1,
        replicates=1,
        max_tokens=settings.max_tokens,
    )
    write_models(
        store, run_id, [(name, role, stored_spec(role)) for name, role in generators.roles()]
    )
