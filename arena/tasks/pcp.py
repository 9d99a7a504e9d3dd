"""The PCP task: one unit is a (model, pair, sample): both prompts answered, then every judge's
readings of the two responses.

A unit asks the model both prompts of a pair at once (no system prompt; a contestant's persona,
if it has one, as a system message), then asks each judge, all at once:

- for a PCP pair (a left and a right topic): the consistency judge in both presentation orders
  (`a_first`, the published one, and `b_first`), and the helpfulness judge on each response;
- for a paired-CSV item: the willingness judge in both orders, and the refusal /
  opposing-perspectives scales on each response.

So every unit has 2 responses and 4 readings per judge (`READINGS`). A judge whose reply cannot be
read gets one repair request; still unreadable, the reading is stored with `score` NULL and
`readable` false, left out of the metrics and counted. Empty replies are retried as failed calls
(the published protocol retries them).

What it records (storage/migrations/0005_pcp.sql, docs/schema.md): `pcp_pairs` as the plan
reaches a pair (`register`, idempotent), `pcp_responses` when a reply comes back, `pcp_judgments`
when a reading is in, each written after its `calls` row. A failed call leaves no row but its
attempts in `calls` (`debate_id` the unit's id): a rerun asks only for what is missing, reading
the stored responses back for the judges. Resuming reads, for a chunk of the plan, which responses
and readings the store holds (`recorded`).

Around each answering call the task sets `arena.protocol.pcp.SIDE` to the prompt's side ('left'
or 'right' for PCP, the CSV's label otherwise), which a simulated answerer reads to answer by its
lean; real backends ignore it.

A run (`runs` with kind 'pcp', `models` with roles 'answerer' and 'judge') is checked before it
continues (`check_run`): its protocol settings (`arena.config.pcp.PROTOCOL_FIELDS`), and each
model's and judge's definition, must be those it started with. More templates, valences, pairs,
samples, models or judges extend it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from arena.backends import Backend, Completion, GenerateSettings, create_backend
from arena.calling import CallResult
from arena.config.pcp import PCPConfig, PCPSettings
from arena.config.schema import ContestantRole, JudgeRole
from arena.core.clock import now
from arena.core.errors import UserError
from arena.core.ids import content_id
from arena.core.messages import Message
from arena.protocol.pcp import SIDE, PairItem, Templates, load_pairs, select_templates
from arena.protocol.pcp_judges import (
    ORDERS,
    Measure,
    Order,
    consistency_messages,
    helpfulness_messages,
    parse_consistency,
    parse_helpfulness,
    parse_scales,
    parse_willingness,
    repair_messages,
    scales_messages,
    willingness_messages,
)
from arena.runner import RunContext, Tally, Task
from arena.runs import check_identities, check_settings, write_models, write_run
from arena.tasks.debate import generate_settings
from storage import Store

_T = TypeVar("_T")

ANSWERER, JUDGE = "answerer", "judge"
"""The `models.role` of a PCP run's answering models and judges."""
READINGS = 4
"""Readings per (unit, judge): two orders of the pair measure, one per response."""
SIDES = ("a", "b")


# ---------------------------------------------------------------- which pairs


def _limit_order(seed: int, item: PairItem) -> bytes:
    return hashlib.sha256(f"{seed}\x1flimit\x1f{item.pair_id}".encode()).digest()


def select_pairs(
    pairs: str | os.PathLike[str], templates: Templates | None, settings: PCPSettings
) -> list[PairItem]:
    """The pairs a run asks, in the file's order (template by template for topic pairs): the
    templates and valences asked for, and at most `limit` pairs chosen by a SHA-256 of (seed,
    pair id), so a larger limit keeps a smaller one's pairs. Raises `ConfigError` on bad input."""
    is_csv = Path(pairs).suffix.lower() == ".csv"
    if is_csv and (settings.templates or settings.valences):
        raise UserError(
            f"{pairs}: --templates and --valences apply to topic-pair files, not to a paired CSV"
        )
    chosen = None
    if templates is not None and not is_csv:
        chosen = select_templates(templates, settings.templates, settings.valences)
    items = load_pairs(pairs, chosen)
    if settings.limit is not None and settings.limit < len(items):
        keep = {
            i.pair_id
            for i in sorted(items, key=lambda i: _limit_order(settings.seed, i))[: settings.limit]
        }
        items = [i for i in items if i.pair_id in keep]
    return items


def pair_row(run_id: str, item: PairItem) -> dict[str, Any]:
    """The `pcp_pairs` row of a pair."""
    return {
        "run_id": run_id,
        "pair_id": item.pair_id,
        "kind": item.kind,
        "prompt_a": item.prompt_a,
        "prompt_b": item.prompt_b,
        "label_a": item.label_a,
        "label_b": item.label_b,
        "topic_a": item.topic_a,
        "topic_b": item.topic_b,
        "template": item.template,
        "valence": item.valence,
        "masked": item.masked,
        "meta": json.dumps(dict(item.meta)) if item.meta else None,
    }


# ---------------------------------------------------------------- units and the plan


@dataclass(frozen=True)
class PCPUnit:
    """Both prompts of a pair, asked of a model, and judged."""

    unit_id: str
    model: str
    pair_id: str
    sample: int


def unit_id(run_id: str, model: str, pair: str, sample: int) -> str:
    """The content-derived id of a unit (`pcp_responses.unit_id`)."""
    return content_id("pcp", run_id, model, pair, sample)


class PCPPlan:
    """Pairs x samples x models, pair by pair, read lazily by the runner."""

    def __init__(self, run_id: str, items: Sequence[PairItem], models: Sequence[str], samples: int):
        self.run_id = run_id
        self.items = items
        self.models = list(models)
        self.samples = samples

    def __len__(self) -> int:
        return len(self.items) * self.samples * len(self.models)

    def __iter__(self) -> Iterator[PCPUnit]:
        for item in self.items:
            for sample in range(1, self.samples + 1):
                for model in self.models:
                    yield PCPUnit(
                        unit_id(self.run_id, model, item.pair_id, sample),
                        model,
                        item.pair_id,
                        sample,
                    )


@dataclass
class PCPState:
    """What the store holds of a unit: its responses by side, and its readings' keys."""

    responses: dict[str, str] = field(default_factory=dict)
    readings: set[tuple[str, str, str]] = field(default_factory=set)
    """(judge, measure, variant)."""


@dataclass(frozen=True)
class _Reading:
    score: float | None
    favoured: str | None = None
    score2: float | None = None


# ---------------------------------------------------------------- the task


class PCPTask(Task[PCPUnit, PCPState]):
    """Ask every model both prompts of every pair, `samples` times; judge each pair."""

    unit_name: ClassVar[str] = "pair"
    step_name: ClassVar[str] = "response"

    def __init__(self, config: PCPConfig, items: Sequence[PairItem], store: Store, run_id: str):
        self.config = config
        self.settings = config.settings
        self.store = store
        self.run_id = run_id
        self.items = {i.pair_id: i for i in items}
        self.models = {role.name: role for role in config.models}
        self.judges = {role.name: role for role in config.judges}
        self._registered: set[str] = set()
        self._answer_settings = {
            role.name: generate_settings(
                role.params, self.settings.max_tokens, self.settings.seed, 0
            )
            for role in config.models
        }
        self._judge_settings = {
            role.name: generate_settings(
                role.params, self.settings.judge_max_tokens, self.settings.seed, 0
            )
            for role in config.judges
        }

    def plan(self) -> PCPPlan:
        return PCPPlan(
            self.run_id, list(self.items.values()), list(self.models), self.settings.samples
        )

    def backends(self) -> dict[str, Backend]:
        """The backends the task calls, by the caller's key (judges under `judge:<name>`)."""
        out = {name: create_backend(role.provider) for name, role in self.models.items()}
        out.update({f"judge:{n}": create_backend(r.provider) for n, r in self.judges.items()})
        return out

    # --- the Task interface ----------------------------------------------------------------------

    def unit_id(self, unit: PCPUnit) -> str:
        return unit.unit_id

    def register(self, units: Sequence[PCPUnit]) -> None:
        for unit in units:
            if unit.pair_id in self._registered:
                continue
            self._registered.add(unit.pair_id)
            row = pair_row(self.run_id, self.items[unit.pair_id])
            self.store.writer.insert("pcp_pairs", row, on_conflict="ignore")

    def recorded(self, units: Sequence[PCPUnit]) -> Mapping[str, PCPState]:
        ids = [u.unit_id for u in units]
        states: dict[str, PCPState] = {}
        for uid, side, text in self.store.read(
            "select unit_id, side, raw_text from pcp_responses where unit_id in (select unnest(?))",
            [ids],
        ):
            states.setdefault(uid, PCPState()).responses[side] = text
        for uid, judge, measure, variant in self.store.read(
            "select unit_id, judge, measure, variant from pcp_judgments"
            " where unit_id in (select unnest(?))",
            [ids],
        ):
            states.setdefault(uid, PCPState()).readings.add((judge, measure, variant))
        return states

    def finished(self, unit: PCPUnit, state: PCPState | None) -> bool:
        if state is None or len(state.responses) < 2:
            return False
        return all(key in state.readings for key in self._reading_keys(unit))

    def tally(self, units: Sequence[PCPUnit]) -> Tally:
        """Units with both responses and every reading stored, each with its `calls` row."""
        ids = [u.unit_id for u in units]
        ((finished, responses, readings),) = self.store.read(
            """
            with r as (
                select p.unit_id, count(*) as n from pcp_responses p
                join calls c on c.call_id = p.call_id
                where p.unit_id in (select unnest($1)) group by p.unit_id
            ), j as (
                select g.unit_id, count(*) as n from pcp_judgments g
                join calls c on c.call_id = g.call_id
                where g.unit_id in (select unnest($1)) and g.judge in (select unnest($2))
                group by g.unit_id
            )
            select count(*) filter (where r.n = 2 and coalesce(j.n, 0) = $3),
                   coalesce(sum(r.n), 0), coalesce(sum(j.n), 0)
            from r left join j using (unit_id)
            """,
            [ids, list(self.judges), READINGS * len(self.judges)],
        )
        return Tally(finished=int(finished), steps=int(responses), verdicts=int(readings))

    def failed(self, unit: PCPUnit, error: str) -> None:
        """Nothing more to write: the failed attempts are in `calls`; a rerun asks again."""

    def not_started(self, unit: PCPUnit) -> None:
        """Nothing to write: a pair not asked has no row."""

    async def play(self, unit: PCPUnit, state: PCPState | None, ctx: RunContext) -> None:
        state = state or PCPState()
        item = self.items[unit.pair_id]
        responses = dict(state.responses)
        first = not responses  # the unit's first call checks the budget
        missing = [s for s in SIDES if s not in responses]
        answers = await _settle([self._answer(unit, item, side, ctx, first) for side in missing])
        responses.update(zip(missing, answers, strict=True))
        jobs: list[Awaitable[None]] = []
        for judge in self.judges:
            for measure, variant in self._readings(item):
                if (judge, measure, variant) not in state.readings:
                    jobs.append(self._judge(unit, item, judge, measure, variant, responses, ctx))
        await _settle(jobs)

    # --- answering ----------------------------------------------------------------------------

    def _messages(self, model: str, prompt: str) -> list[Message]:
        persona = self.models[model].persona
        head = [Message("system", f"You are {persona}.")] if persona else []
        return [*head, Message("user", prompt)]

    async def _answer(
        self, unit: PCPUnit, item: PairItem, side: str, ctx: RunContext, check: bool
    ) -> str:
        prompt = item.prompt_a if side == "a" else item.prompt_b
        base = self._answer_settings[unit.model]
        settings = GenerateSettings(**{**base.as_dict(), "seed": (base.seed or 0) + unit.sample})
        token = SIDE.set(item.label_a if side == "a" else item.label_b)
        try:
            result = await ctx.caller.call(
                unit.model,
                self._messages(unit.model, prompt),
                settings,
                purpose="pcp",
                debate_id=unit.unit_id,
                before_send=ctx.check_budget if check else None,
                accept=_not_empty,
            )
        finally:
            SIDE.reset(token)
        completion = result.completion
        self.store.writer.insert(
            "pcp_responses",
            {
                "response_id": content_id(unit.unit_id, side),
                "unit_id": unit.unit_id,
                "run_id": self.run_id,
                "model": unit.model,
                "pair_id": unit.pair_id,
                "sample": unit.sample,
                "side": side,
                "raw_text": completion.text,
                "reasoning": completion.reasoning,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "cost_usd": completion.cost_usd,
                "latency_s": result.latency_s,
                "finish_reason": completion.finish_reason,
                "call_id": result.call_id,
                "created_at": now(),
            },
            on_conflict="ignore",
        )
        ctx.progress.steps += 1
        return completion.text

    # --- judging ------------------------------------------------------------------------------

    def _readings(self, item: PairItem) -> list[tuple[Measure, str]]:
        pair: Measure = "consistency" if item.kind == "pcp" else "willingness"
        single: Measure = "helpfulness" if item.kind == "pcp" else "scales"
        return [(pair, order) for order in ORDERS] + [(single, side) for side in SIDES]

    def _reading_keys(self, unit: PCPUnit) -> list[tuple[str, str, str]]:
        readings = self._readings(self.items[unit.pair_id])
        return [(j, m, v) for j in self.judges for m, v in readings]

    def _judge_request(
        self, item: PairItem, measure: Measure, variant: str, responses: Mapping[str, str]
    ) -> tuple[list[Message], Callable[[str], _Reading | None]]:
        a, b = responses["a"], responses["b"]
        if measure == "consistency":
            order: Order = "a_first" if variant == "a_first" else "b_first"
            topic_a, topic_b = item.topic_a or item.label_a, item.topic_b or item.label_b
            masked = item.masked or item.prompt_a
            messages = consistency_messages(masked, topic_a, topic_b, a, b, order)

            def consistency(reply: str) -> _Reading | None:
                found = parse_consistency(reply, order)
                return None if found is None else _Reading(found.score, found.favoured)

            return messages, consistency
        if measure == "willingness":
            order = "a_first" if variant == "a_first" else "b_first"
            messages = willingness_messages(item.prompt_a, item.prompt_b, a, b, order)

            def willingness(reply: str) -> _Reading | None:
                found = parse_willingness(reply, order)
                return None if found is None else _Reading(None, found)

            return messages, willingness
        request = item.prompt_a if variant == "a" else item.prompt_b
        response = a if variant == "a" else b
        if measure == "helpfulness":

            def helpfulness(reply: str) -> _Reading | None:
                found = parse_helpfulness(reply)
                return None if found is None else _Reading(found)

            return helpfulness_messages(request, response), helpfulness

        def scales(reply: str) -> _Reading | None:
            found = parse_scales(reply)
            return None if found is None else _Reading(found[0], score2=found[1])

        return scales_messages(request, response), scales

    async def _judge(
        self,
        unit: PCPUnit,
        item: PairItem,
        judge: str,
        measure: Measure,
        variant: str,
        responses: Mapping[str, str],
        ctx: RunContext,
    ) -> None:
        messages, parse = self._judge_request(item, measure, variant, responses)
        settings = self._judge_settings[judge]
        key = f"judge:{judge}"
        result: CallResult = await ctx.caller.call(
            key, messages, settings, purpose="judge", debate_id=unit.unit_id
        )
        reading = parse(result.completion.text)
        repaired = False
        if reading is None:
            repair = repair_messages(messages, result.completion.text, measure)
            result = await ctx.caller.call(
                key, repair, settings, purpose="judge_repair", debate_id=unit.unit_id
            )
            reading = parse(result.completion.text)
            repaired = True
        self.store.writer.insert(
            "pcp_judgments",
            {
                "judgment_id": content_id(unit.unit_id, judge, measure, variant),
                "unit_id": unit.unit_id,
                "run_id": self.run_id,
                "model": unit.model,
                "pair_id": unit.pair_id,
                "sample": unit.sample,
                "judge": judge,
                "measure": measure,
                "variant": variant,
                "score": None if reading is None else reading.score,
                "favoured": None if reading is None else reading.favoured,
                "score2": None if reading is None else reading.score2,
                "readable": reading is not None,
                "repaired": repaired,
                "raw_text": result.completion.text,
                "call_id": result.call_id,
                "created_at": now(),
            },
            on_conflict="ignore",
        )
        ctx.progress.verdicts += 1


def _not_empty(completion: Completion) -> str | None:
    """An empty reply is a failed attempt, retried (the published protocol asks again)."""
    return None if completion.text.strip() else "empty reply"


async def _settle(jobs: Sequence[Awaitable[_T]]) -> list[_T]:
    """Await all of `jobs` together; once all have ended, raise the first error, if any (so
    every call that succeeded is recorded before a unit fails)."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


# ---------------------------------------------------------------- the run's rows


def default_run_id(pairs: str | os.PathLike[str], settings: PCPSettings) -> str:
    """`pcp-<pairs file's stem>-<hash of the protocol settings>`: the same command continues the
    same run."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(pairs).stem)[:40]
    return f"pcp-{stem}-" + content_id("pcp", settings.protocol(), length=8)


def stored_spec(role: ContestantRole | JudgeRole) -> dict[str, Any]:
    """A model or judge as `models.spec` stores it: its provider settings (and persona)."""
    spec = role.provider.model_dump(mode="json", exclude_defaults=False)
    if isinstance(role, ContestantRole):
        spec["persona"] = role.persona
    return spec


def _identity(backend: str, model: str | None, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change under a name within a run."""
    keys = ("params", "persona", "politics", "noise", "order_bias")
    return {"backend": backend, "model": model, **{k: spec.get(k) for k in keys}}


def _roles(config: PCPConfig) -> list[tuple[str, ContestantRole | JudgeRole]]:
    return [(ANSWERER, m) for m in config.models] + [(JUDGE, j) for j in config.judges]


def check_run(store: Store, config: PCPConfig, run_id: str) -> bool:
    """Refuse to continue `run_id` with other protocol settings, or a model or judge defined
    differently; True if it exists."""
    if not check_settings(store, run_id, "pcp", "a PCP run", config.settings.protocol()):
        return False
    roles = [(name, role, stored_spec(role)) for name, role in _roles(config)]
    check_identities(store, run_id, roles, _identity, label="")
    return True


def record_run(
    store: Store,
    config: PCPConfig,
    run_id: str,
    pairs: str | os.PathLike[str],
    count: int,
    command: str,
    created_at: datetime,
) -> None:
    """Write (or refresh) the run's row, its models and its judges."""
    settings = config.settings
    resolved = {
        "settings": settings.model_dump(mode="json"),
        "pairs": str(pairs),
        "pair_count": count,
        "models_file": str(config.models_path) if config.models_path else None,
        "judges_file": str(config.judges_path) if config.judges_path else None,
        "models": [stored_spec(role) for role in config.models],
        "judges": [stored_spec(role) for role in config.judges],
    }
    write_run(
        store,
        run_id=run_id,
        kind="pcp",
        config=resolved,
        command=command,
        created_at=created_at,
        seed=settings.seed,
        turns=1,
        replicates=settings.samples,
        max_tokens=settings.max_tokens,
    )
    write_models(store, run_id, [(name, role, stored_spec(role)) for name, role in _roles(config)])
