"""The BBQ task: one unit is one answer, a (model, item, sample), asked once and recorded.

Items come from `select_items` (BBQ files, categories, the template-disjoint split, a seeded
per-category sample) and are shown as `arena.protocol.bbq.present` renders them, options shuffled
per item when the run says so. The plan (`BBQPlan`) is items x samples x models, item by item, so
the answers of one item arrive together and a batching backend gets the models' prompts at once.

What it records (storage/migrations/0004_bbq.sql, docs/schema.md):
- `bbq_items`: each item as the run showed it (letters, option texts), with the split it was
  drawn from, written as the plan reaches it (`register`, idempotent);
- `bbq_responses`: each answer, its reply, the letter read from it (`parse_reply`; NULL when none
  can be) and, when the run asks for top logprobs and the backend returns them, the letters'
  probabilities, written after its `calls` row (the writer keeps a prefix of what was queued, so
  an answer never refers to a call the store lost).

A failed call leaves no answer row, only its attempts in `calls` (with `debate_id` the unit's
`response_id`), so a rerun asks again; so does a unit cut short by a kill. Resuming reads which
response ids the store holds for a chunk of the plan: finished units are skipped, nothing else
is kept. `tally` counts the answers whose `calls` row is stored too.

Around each call the task sets `arena.protocol.bbq.ANSWER_KEY` to the item's answer key, which a
simulated answerer reads to behave by its profile; real backends ignore it.

A run (`runs` with kind 'bbq', `models` with role 'answerer') is checked before it continues
(`check_run`): the settings that change what an answer means (`arena.config.bbq.PROTOCOL_FIELDS`)
and each model's definition must be those it started with, and an item already recorded must be
shown as it was. More categories, a larger limit, more samples or more models extend it.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from arena.backends import Backend, GenerateSettings, create_backend
from arena.config.bbq import BBQConfig, BBQSettings
from arena.config.schema import ContestantRole
from arena.core.clock import now
from arena.core.errors import UserError
from arena.core.ids import content_id
from arena.core.messages import Message
from arena.protocol.bbq import (
    ANSWER_KEY,
    LETTERS,
    BBQItem,
    Presented,
    answer_key,
    item_id,
    load_items,
    parse_reply,
    present,
    split_by_template,
)
from arena.runner import RunContext, Tally, Task
from arena.runs import check_identities, check_settings, write_models, write_run
from arena.tasks.debate import generate_settings
from storage import Store

ROLE = "answerer"
"""The `models.role` of a BBQ run's models."""
PURPOSE = "bbq"
"""The `calls.purpose` of a BBQ answer's call."""


# ---------------------------------------------------------------- which items


def _limit_order(seed: int, item: BBQItem) -> bytes:
    text = "\x1f".join(str(p) for p in (seed, "limit", item.category, item.example_id))
    return hashlib.sha256(text.encode("utf-8")).digest()


def select_items(data: str | os.PathLike[str], settings: BBQSettings) -> list[BBQItem]:
    """The items a run asks, in file order: the BBQ files under `data`, the categories asked
    for, the split's half (`split_by_template`, so dev and train share no template), and at most
    `limit` per category, chosen by a SHA-256 of (seed, category, example_id): the sample does
    not depend on the order of the files, and a larger limit keeps a smaller one's items.

    Raises `UserError` / `ConfigError` (file, line, field) before anything is written."""
    items = load_items(data)
    if settings.categories is not None:
        present_here = sorted({i.category for i in items})
        for name in settings.categories:
            if name not in present_here:
                raise UserError(
                    f"{data}: no items of category {name} (the files hold "
                    f"{', '.join(present_here)}); check --categories"
                )
        wanted = set(settings.categories)
        items = [i for i in items if i.category in wanted]
    if settings.split != "all":
        halves = split_by_template(items, settings.dev_fraction, settings.seed)
        items = list(halves.dev if settings.split == "dev" else halves.train)
    if settings.limit is not None:
        by_category: dict[str, list[BBQItem]] = {}
        for item in items:
            by_category.setdefault(item.category, []).append(item)
        keep = {
            i.key
            for group in by_category.values()
            for i in sorted(group, key=lambda i: _limit_order(settings.seed, i))[: settings.limit]
        }
        items = [i for i in items if i.key in keep]
    if not items:
        raise UserError(
            f"{data}: no items selected (--split {settings.split}, --dev-fraction "
            f"{settings.dev_fraction}); choose another split or fraction"
        )
    return items


def item_row(run_id: str, shown: Presented, settings: BBQSettings) -> dict[str, Any]:
    """The `bbq_items` row of an item as the run shows it."""
    item = shown.item
    options = shown.options
    split_of = settings.split != "all"
    return {
        "run_id": run_id,
        "item_id": item_id(item),
        "category": item.category,
        "question_index": item.question_index,
        "example_id": item.example_id,
        "context_condition": item.context_condition,
        "question_polarity": item.question_polarity,
        "context": item.context,
        "question": item.question,
        "option_a": options[0],
        "option_b": options[1],
        "option_c": options[2],
        "gold_letter": shown.gold_letter,
        "unknown_letter": shown.unknown_letter,
        "biased_letter": shown.biased_letter,
        "split": settings.split,
        "split_seed": settings.seed if split_of else None,
        "dev_fraction": settings.dev_fraction if split_of else None,
    }


# ---------------------------------------------------------------- units and the plan


@dataclass(frozen=True)
class BBQUnit:
    """One answer to ask for: a model, an item, a sample."""

    response_id: str
    model: str
    item_id: str
    sample: int
    """1, 2, ... up to `--samples`."""


def response_id(run_id: str, model: str, item: str, sample: int) -> str:
    """The content-derived id of an answer (`bbq_responses.response_id`)."""
    return content_id("bbq", run_id, model, item, sample)


class BBQPlan:
    """Items x samples x models, item by item, read lazily by the runner."""

    def __init__(
        self, run_id: str, shown: Sequence[Presented], models: Sequence[str], samples: int
    ):
        self.run_id = run_id
        self.shown = shown
        self.models = list(models)
        self.samples = samples

    def __len__(self) -> int:
        return len(self.shown) * self.samples * len(self.models)

    def __iter__(self) -> Iterator[BBQUnit]:
        for shown in self.shown:
            item = item_id(shown.item)
            for sample in range(1, self.samples + 1):
                for model in self.models:
                    yield BBQUnit(
                        response_id(self.run_id, model, item, sample), model, item, sample
                    )


# ---------------------------------------------------------------- reading the first token


def letter_probabilities(top: Sequence[tuple[str, float]] | None) -> dict[str, float | None]:
    """P(A), P(B), P(C) from the first token's top alternatives: the summed probability of the
    tokens that read as the letter once spaces and brackets are stripped (" A", "A", "(A");
    None for a letter none of them reads as (it is not among the top k), and for all three when
    the backend returned no alternatives.

    >>> letter_probabilities([(" A", math.log(0.5)), ("A", math.log(0.25)), ("The", -1.0)])
    {'A': 0.75, 'B': None, 'C': None}
    """
    if not top:
        return dict.fromkeys(LETTERS, None)
    found: dict[str, float | None] = dict.fromkeys(LETTERS, None)
    for token, logprob in top:
        letter = token.strip().strip("()[]*.:").strip().upper()
        if letter in found and math.isfinite(logprob):
            found[letter] = (found[letter] or 0.0) + math.exp(logprob)
    return found


# ---------------------------------------------------------------- the task


class BBQTask(Task[BBQUnit, bool]):
    """Ask every model every item, `samples` times; record each answer."""

    unit_name: ClassVar[str] = "answer"
    step_name: ClassVar[str] = "answer"

    def __init__(self, config: BBQConfig, items: Sequence[BBQItem], store: Store, run_id: str):
        self.config = config
        self.settings = config.settings
        self.store = store
        self.run_id = run_id
        self.models = {role.name: role for role in config.models}
        self.shown = {
            item_id(i): present(i, shuffle=self.settings.shuffle_options, seed=self.settings.seed)
            for i in items
        }
        self._registered: set[str] = set()
        self._recent: dict[str, list[Message]] = {}
        self._settings = {
            role.name: self._generate_settings(role) for role in config.models
        }  # per model; the sample changes only the seed

    def plan(self) -> BBQPlan:
        """The run's plan: every item, sample and model."""
        return BBQPlan(
            self.run_id, list(self.shown.values()), list(self.models), self.settings.samples
        )

    def backends(self) -> dict[str, Backend]:
        """The backends the task calls, by model name."""
        return {name: create_backend(role.provider) for name, role in self.models.items()}

    def _generate_settings(self, role: ContestantRole) -> GenerateSettings:
        base = generate_settings(role.params, self.settings.max_tokens, self.settings.seed, 0)
        return replace(base, top_logprobs=self.settings.top_logprobs)

    def messages(self, unit: BBQUnit) -> list[Message]:
        """What a model is sent: its persona as a system message, if it has one, then the
        question (`Presented.messages`)."""
        persona = self.models[unit.model].persona
        head = [Message("system", f"You are {persona}.")] if persona else []
        return head + self._question(unit.item_id)

    def _question(self, item: str) -> list[Message]:
        """The item's prompt, rendered once for all the models and samples that ask it close
        together (the plan is item by item; a few recent items are kept)."""
        cached = self._recent.get(item)
        if cached is None:
            cached = self.shown[item].messages()
            self._recent[item] = cached
            if len(self._recent) > 256:
                self._recent.pop(next(iter(self._recent)))
        return list(cached)

    # --- the Task interface ----------------------------------------------------------------------

    def unit_id(self, unit: BBQUnit) -> str:
        return unit.response_id

    def register(self, units: Sequence[BBQUnit]) -> None:
        for unit in units:
            if unit.item_id in self._registered:
                continue
            self._registered.add(unit.item_id)
            row = item_row(self.run_id, self.shown[unit.item_id], self.settings)
            self.store.writer.insert("bbq_items", row, on_conflict="ignore")

    def recorded(self, units: Sequence[BBQUnit]) -> Mapping[str, bool]:
        ids = [u.response_id for u in units]
        rows = self.store.read(
            "select response_id from bbq_responses where response_id in (select unnest(?))", [ids]
        )
        return {rid: True for (rid,) in rows}

    def finished(self, unit: BBQUnit, state: bool | None) -> bool:
        return bool(state)

    def tally(self, units: Sequence[BBQUnit]) -> Tally:
        """Answers stored with their `calls` row, read back as one count."""
        ids = [u.response_id for u in units]
        ((n,),) = self.store.read(
            "select count(*) from bbq_responses r join calls c on c.call_id = r.call_id"
            " where r.response_id in (select unnest(?))",
            [ids],
        )
        return Tally(finished=int(n), steps=int(n))

    def failed(self, unit: BBQUnit, error: str) -> None:
        """Nothing more to write: the failed attempts are in `calls`, and no answer row means
        the next run asks again."""

    def not_started(self, unit: BBQUnit) -> None:
        """Nothing to write: an answer not asked has no row."""

    async def play(self, unit: BBQUnit, state: bool | None, ctx: RunContext) -> None:
        shown = self.shown[unit.item_id]
        base = self._settings[unit.model]
        settings = replace(base, seed=(base.seed or 0) + unit.sample)
        token = ANSWER_KEY.set(answer_key(shown))
        try:
            result = await ctx.caller.call(
                unit.model,
                self.messages(unit),
                settings,
                purpose=PURPOSE,
                debate_id=unit.response_id,
                before_send=ctx.check_budget,
            )
        finally:
            ANSWER_KEY.reset(token)
        completion = result.completion
        position = parse_reply(completion.text, shown.options)
        probs = letter_probabilities(completion.top_logprobs)
        row = {
            "response_id": unit.response_id,
            "run_id": self.run_id,
            "model": unit.model,
            "item_id": unit.item_id,
            "sample": unit.sample,
            "raw_text": completion.text,
            "reasoning": completion.reasoning,
            "answer": None if position is None else LETTERS[position],
            "p_a": probs["A"],
            "p_b": probs["B"],
            "p_c": probs["C"],
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "cost_usd": completion.cost_usd,
            "latency_s": result.latency_s,
            "finish_reason": completion.finish_reason,
            "call_id": result.call_id,
            "created_at": now(),
        }
        self.store.writer.insert("bbq_responses", row, on_conflict="ignore")
        ctx.progress.steps += 1


# ---------------------------------------------------------------- the run's rows


def default_run_id(settings: BBQSettings) -> str:
    """`bbq-<hash of the protocol settings>`: the same command continues the same run."""
    return "bbq-" + content_id("bbq", settings.protocol(), length=8)


def stored_spec(role: ContestantRole) -> dict[str, Any]:
    """A model as `models.spec` stores it for a BBQ run: its provider settings and persona."""
    return {**role.provider.model_dump(mode="json"), "persona": role.persona}


def _identity(backend: str, model: str | None, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change under a model's name within a run."""
    return {
        "backend": backend,
        "model": model,
        "params": spec.get("params"),
        "persona": spec.get("persona"),
        "bbq": spec.get("bbq"),  # a simulated answerer's profile
    }


def check_run(
    store: Store, config: BBQConfig, run_id: str, items: Sequence[Mapping[str, Any]]
) -> bool:
    """Refuse to continue `run_id` with other protocol settings, a model defined differently,
    or an item shown differently (`items`: the planned `bbq_items` rows); True if it exists."""
    if not check_settings(store, run_id, "bbq", "a BBQ run", config.settings.protocol()):
        return False
    check_identities(
        store, run_id, [(ROLE, role, stored_spec(role)) for role in config.models], _identity
    )
    columns = [c for c in items[0] if c != "run_id"] if items else []
    if columns:
        planned = {row["item_id"]: row for row in items}
        select = ", ".join(columns)
        for values in store.read(
            f"select {select} from bbq_items where run_id = ? and item_id in (select unnest(?))",
            [run_id, list(planned)],
        ):
            old_row = dict(zip(columns, values, strict=True))
            new_row = planned[old_row["item_id"]]
            differ = [c for c in columns if new_row[c] != old_row[c]]
            if differ:
                raise UserError(
                    f"item {old_row['item_id']} of run {run_id!r} is shown differently now "
                    f"({', '.join(differ)} changed: another --data?); start another --run"
                )
    return True


def record_run(
    store: Store,
    config: BBQConfig,
    run_id: str,
    data: str | os.PathLike[str],
    items: int,
    command: str,
    created_at: datetime,
) -> None:
    """Write (or refresh) the run's row and its models."""
    settings = config.settings
    resolved = {
        "settings": settings.model_dump(mode="json"),
        "data": str(data),
        "items": items,
        "models_file": str(config.models_path) if config.models_path else None,
        "models": [stored_spec(role) for role in config.models],
    }
    write_run(
        store,
        run_id=run_id,
        kind="bbq",
        config=resolved,
        command=command,
        created_at=created_at,
        seed=settings.seed,
        turns=1,
        replicates=settings.samples,
        max_tokens=settings.max_tokens,
    )
    write_models(store, run_id, [(ROLE, role, stored_spec(role)) for role in config.models])
