"""The tournament engine: plans the debates, runs them all concurrently, records as it goes.

Every ordered pair of distinct contestants debates every topic (so each model argues each side
against each other model), `replicates` times. Debates advance turn by turn, all at once, within
the global and per-model call limits (`arena.calling`). Each finished turn and verdict is handed to
the store's writer at once, which makes it durable within a second.

Resuming is the same as running: the engine reads what the run already recorded, skips finished
debates, continues unfinished ones from their next turn (their transcript rebuilt from the stored
turns), asks only the judges that have not yet given a verdict, and retries failed debates. Ids are
content-derived, so nothing is ever written twice.

A judge with `swap_check` gives two verdicts on every debate, one per neutral-label presentation
(`arena.judging.presentations`): under its name, with FOR called Debater A, and under
`<name>:swapped`, with FOR called Debater B. Each is recorded, and resumed, on its own; only the
first counts towards the debate's winner, so that each judge counts once.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from arena.backends import Backend, BackendSpec, GenerateSettings, Message, create_backend
from arena.calling import Caller, CallStats
from arena.config import Topic, TournamentConfig, TournamentSettings
from arena.core.errors import BackendError, BudgetReached
from arena.core.ids import content_id
from arena.core.text import strip_thinking
from arena.judging import (
    Presentation,
    Verdict,
    majority,
    parse_letter_verdict,
    parse_verdict,
    presentations,
    prob_for,
    prob_letter_a,
    verdict_from_prob,
)
from arena.protocol.debate import Transcript, render, role_of, side_of
from storage import Store


def now() -> datetime:
    """UTC now, naive (DuckDB TIMESTAMP)."""
    return datetime.now(UTC).replace(tzinfo=None)


_REPAIR_TEMPLATE = {False: "judge_repair", True: "judge_letters_repair"}
"""The repair request, by whether the judge was shown neutral labels (and answers in letters)."""


@dataclass(frozen=True)
class DebatePlan:
    debate_id: str
    topic: Topic
    for_model: str
    against_model: str
    replicate: int


def debate_id(run_id: str, topic_id: str, for_model: str, against_model: str, rep: int) -> str:
    return content_id("debate", run_id, topic_id, for_model, against_model, rep)


def plan_debates(
    run_id: str, topics: Sequence[Topic], contestants: Sequence[str], replicates: int
) -> list[DebatePlan]:
    """Round robin with side swap: every ordered pair of distinct contestants, every topic."""
    return [
        DebatePlan(debate_id(run_id, topic.id, a, b, rep), topic, a, b, rep)
        for rep in range(replicates)
        for topic in topics
        for a in contestants
        for b in contestants
        if a != b
    ]


@dataclass
class Progress:
    """What the progress display shows; the engine updates it."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    turns: int = 0
    verdicts: int = 0
    started: float = field(default_factory=time.monotonic)
    calls: CallStats = field(default_factory=CallStats)

    def turns_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.turns / elapsed if elapsed > 0 else 0.0


@dataclass
class RunSummary:
    run_id: str
    total: int
    done: int
    failed: int
    skipped: int
    turns: int
    verdicts: int
    elapsed_s: float
    calls: CallStats
    errors: list[tuple[str, str]]
    not_started: int = 0
    """Debates left unstarted because the budget was reached."""
    spent_usd: float = 0.0
    """What the run has spent in all, earlier sessions included."""


@dataclass
class _Resume:
    """What a run already recorded."""

    status: dict[str, str] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    verdicts: dict[str, dict[str, str | None]] = field(default_factory=lambda: defaultdict(dict))


class Tournament:
    """One tournament run against one store."""

    def __init__(self, config: TournamentConfig, store: Store, run_id: str):
        self.config = config
        self.settings: TournamentSettings = config.settings
        self.store = store
        self.run_id = run_id
        self.progress = Progress()
        self.errors: list[tuple[str, str]] = []
        self._specs = {("contestant", s.name): s for s in config.contestants}
        self._specs.update({("judge", s.name): s for s in config.judges})
        # Every verdict a debate needs: one per judge, two for a judge with swap_check.
        self._presentations = [
            p for j in config.judges for p in presentations(j.name, swap_check=j.swap_check)
        ]
        # A model may be both a contestant and a judge: judges get their own backend and limits.
        self._judge_key = {j.name: f"judge:{j.name}" for j in config.judges}
        self.backends: dict[str, Backend] = {c.name: create_backend(c) for c in config.contestants}
        self.backends.update({self._judge_key[j.name]: create_backend(j) for j in config.judges})
        self.caller = Caller(
            self.backends,
            max_concurrency=self.settings.max_concurrency,
            request_timeout_s=self.settings.request_timeout_s,
            retry=self.settings.retry,
            record=self._record_call,
            run_id=run_id,
        )
        self.progress.calls = self.caller.stats
        self._prior_cost = 0.0
        self._not_started = 0
        self.plans = plan_debates(
            run_id,
            config.topics,
            [c.name for c in config.contestants],
            self.settings.replicates,
        )

    # --- recording ---------------------------------------------------------------------------

    def _record_call(self, row: dict[str, Any]) -> None:
        self.store.writer.insert("calls", row, on_conflict="update")

    def _debate_status(
        self, plan: DebatePlan, status: str, *, winner: str | None = None, error: str | None = None
    ) -> None:
        # Always the same columns, so that the writer merges a debate's updates within a batch.
        row = {
            "debate_id": plan.debate_id,
            "status": status,
            "winner": winner,
            "error": error,
            "updated_at": now(),
        }
        self.store.writer.insert("debates", row, on_conflict="update")

    # --- resume --------------------------------------------------------------------------------

    def _load_resume(self) -> _Resume:
        resume = _Resume()
        ((cost,),) = self.store.read(
            "select coalesce(sum(cost_usd), 0) from calls where run_id = ?", [self.run_id]
        )
        self._prior_cost = float(cost)
        for did, status in self.store.read(
            "select debate_id, status from debates where run_id = ?", [self.run_id]
        ):
            resume.status[did] = status
        rows = self.store.read(
            "select t.debate_id, t.turn_index, t.text from turns t join debates d using (debate_id)"
            " where d.run_id = ? order by t.debate_id, t.turn_index",
            [self.run_id],
        )
        for did, index, text in rows:
            texts = resume.texts[did]
            if index == len(texts) + 1:  # only a gap-free prefix of turns can be continued
                texts.append(text)
        for did, judge, winner, valid in self.store.read(
            "select v.debate_id, v.judge, v.winner, v.valid from verdicts v"
            " join debates d using (debate_id) where d.run_id = ?",
            [self.run_id],
        ):
            resume.verdicts[did][judge] = winner if valid else None
        return resume

    def register(self) -> _Resume:
        """Write the planned debates (pending) and return what was already recorded."""
        created = now()
        rows = [
            {
                "debate_id": p.debate_id,
                "run_id": self.run_id,
                "topic_id": p.topic.id,
                "for_model": p.for_model,
                "against_model": p.against_model,
                "replicate": p.replicate,
                "turns_planned": self.settings.turns,
                "status": "pending",
                "created_at": created,
                "updated_at": created,
            }
            for p in self.plans
        ]
        self.store.insert_rows("debates", rows, on_conflict="ignore")
        return self._load_resume()

    # --- running -------------------------------------------------------------------------------

    def _settings_for(self, spec: BackendSpec, max_tokens: int, replicate: int) -> GenerateSettings:
        """A model's generation settings; replicates get distinct seeds, so they differ."""
        params = spec.params
        seed = params.seed if params.seed is not None else self.settings.seed
        return GenerateSettings(
            max_tokens=params.max_tokens or max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=seed + replicate,
            stop=tuple(params.stop),
        )

    async def run(self) -> RunSummary:
        resume = self.register()
        todo = []
        for plan in self.plans:
            recorded = resume.verdicts.get(plan.debate_id, {})
            complete = all(p.key in recorded for p in self._presentations)
            if resume.status.get(plan.debate_id) == "done" and complete:
                self.progress.skipped += 1
            else:
                todo.append(plan)
        self.progress.total = len(self.plans)
        self.progress.done = self.progress.skipped
        # Debates under way at once. Each has one call pending at a time, so the window must be
        # well above the call limit to keep every slot busy: measured at 512 slots x 0.5 s,
        # 2x the limit kept 93% of them busy, 4x kept 98%. Bounded, so that a large tournament
        # finishes debates as it goes rather than all of them at the end.
        window = asyncio.Semaphore(max(4 * self.settings.max_concurrency, 16))
        tasks: set[asyncio.Task[None]] = set()

        async def one(plan: DebatePlan) -> None:
            try:
                await self._run_debate(plan, resume)
            finally:
                window.release()

        try:
            for plan in todo:
                await window.acquire()
                task = asyncio.create_task(one(plan))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for backend in self.backends.values():
                await backend.aclose()
        return RunSummary(
            run_id=self.run_id,
            total=self.progress.total,
            done=self.progress.done,
            failed=self.progress.failed,
            skipped=self.progress.skipped,
            turns=self.progress.turns,
            verdicts=self.progress.verdicts,
            elapsed_s=time.monotonic() - self.progress.started,
            calls=self.caller.stats,
            errors=self.errors,
            not_started=self._not_started,
            spent_usd=self.spent_usd(),
        )

    def _check_budget(self) -> None:
        budget = self.settings.budget_usd
        if budget is not None and self.spent_usd() >= budget:
            raise BudgetReached(f"budget of ${budget} reached")

    def spent_usd(self) -> float:
        """The run's spend so far: earlier sessions' calls and this one's."""
        return self._prior_cost + self.caller.stats.cost_usd

    async def _run_debate(self, plan: DebatePlan, resume: _Resume) -> None:
        settings = self.settings
        personas = {
            "FOR": self._specs[("contestant", plan.for_model)].persona,
            "AGAINST": self._specs[("contestant", plan.against_model)].persona,
        }
        transcript = Transcript(plan.topic.motion, settings.turns, settings.max_tokens, personas)
        for index, text in enumerate(resume.texts.get(plan.debate_id, [])[: settings.turns], 1):
            transcript.add(index, text)
        try:
            if not transcript.finished:
                self._debate_status(plan, "running")
            while not transcript.finished:
                await self._next_turn(plan, transcript)
            self._debate_status(plan, "judging")
            winners = await self._judge(plan, transcript, resume.verdicts.get(plan.debate_id, {}))
        except BudgetReached:
            self._debate_status(plan, "pending")
            self._not_started += 1
            return
        except BackendError as error:
            message = f"{type(error).__name__} ({error.kind}): {error}"
            self._debate_status(plan, "failed", error=message[:2000])
            self.errors.append((plan.debate_id, message))
            self.progress.failed += 1
            return
        self._debate_status(plan, "done", winner=majority(w for w in winners if w))
        self.progress.done += 1

    async def _next_turn(self, plan: DebatePlan, transcript: Transcript) -> None:
        index = transcript.next_turn
        side = side_of(index)
        model = plan.for_model if side == "FOR" else plan.against_model
        spec = self._specs[("contestant", model)]
        messages = transcript.prompt_for(index)
        result = await self.caller.call(
            model,
            messages,
            self._settings_for(spec, self.settings.max_tokens, plan.replicate),
            purpose="turn",
            debate_id=plan.debate_id,
            # A new debate starts only while the budget allows; debates under way finish.
            before_send=self._check_budget if index == 1 else None,
        )
        completion = result.completion
        text, thinking = strip_thinking(completion.text)
        self.store.writer.insert(
            "turns",
            {
                "debate_id": plan.debate_id,
                "turn_index": index,
                "side": side,
                "role": role_of(index, self.settings.turns),
                "model": model,
                "text": text,
                "raw_text": completion.text,
                "reasoning": completion.reasoning or thinking,
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
        transcript.add(index, text)
        self.progress.turns += 1

    async def _judge(
        self, plan: DebatePlan, transcript: Transcript, recorded: dict[str, str | None]
    ) -> list[str | None]:
        """Ask for the verdicts not yet recorded; the winners of those that count, one per judge."""
        missing = [p for p in self._presentations if p.key not in recorded]
        # Judges of the same verdict mode and labels see the same messages: render them once.
        views = {
            (self._specs[("judge", p.judge)].verdict == "logprob", p.for_letter) for p in missing
        }
        messages = {
            (logprob, letter): transcript.judge_messages(logprob=logprob, for_letter=letter)
            for logprob, letter in views
        }
        new = await asyncio.gather(*(self._one_verdict(plan, p, messages) for p in missing))
        found = dict(recorded)
        found.update(zip((p.key for p in missing), new, strict=True))
        return [found[p.key] for p in self._presentations if p.counts]

    async def _one_verdict(
        self,
        plan: DebatePlan,
        presentation: Presentation,
        messages_by_view: dict[tuple[bool, str | None], list[Message]],
    ) -> str | None:
        judge, letter = presentation.judge, presentation.for_letter
        spec = self._specs[("judge", judge)]
        key = self._judge_key[judge]
        logprob = spec.verdict == "logprob"
        messages = messages_by_view[(logprob, letter)]
        settings = self._settings_for(spec, self.settings.judge_max_tokens, plan.replicate)
        p_for: float | None = None
        if logprob:
            # One token is all a logprob verdict reads.
            settings = replace(settings, max_tokens=1, top_logprobs=spec.top_logprobs)
        result = await self.caller.call(
            key, messages, settings, purpose="judge", debate_id=plan.debate_id
        )
        results = [result]
        if logprob:
            alternatives = result.completion.top_logprobs or []
            if letter is None:
                p_for = prob_for(alternatives)
                source = ""
            else:
                p_a = prob_letter_a(alternatives)
                p_for = None if p_a is None else (p_a if letter == "A" else 1.0 - p_a)
                source = f" (FOR was Debater {letter})"
            verdict = (
                Verdict(verdict_from_prob(p_for, spec.tie_margin), f"P(FOR) = {p_for:.3f}{source}")
                if p_for is not None
                else None
            )
        else:
            verdict = self._parse(result.completion.text, letter)
            if verdict is None:
                repair = [
                    *messages,
                    Message("assistant", result.completion.text),
                    Message("user", render(_REPAIR_TEMPLATE[letter is not None])),
                ]
                result = await self.caller.call(
                    key, repair, settings, purpose="judge_repair", debate_id=plan.debate_id
                )
                results.append(result)
                verdict = self._parse(result.completion.text, letter)
        completions = [r.completion for r in results]
        self.store.writer.insert(
            "verdicts",
            {
                "debate_id": plan.debate_id,
                "judge": presentation.key,
                "winner": verdict.winner if verdict else None,
                "rationale": verdict.rationale if verdict else None,
                "valid": verdict is not None,
                "repaired": len(results) > 1,
                "raw_text": result.completion.text,
                "prob_for": p_for,
                "prompt_tokens": sum(c.prompt_tokens or 0 for c in completions),
                "completion_tokens": sum(c.completion_tokens or 0 for c in completions),
                "cost_usd": sum(c.cost_usd or 0.0 for c in completions),
                "latency_s": sum(r.latency_s for r in results),
                "created_at": now(),
            },
            on_conflict="ignore",
        )
        self.progress.verdicts += 1
        return verdict.winner if verdict else None

    @staticmethod
    def _parse(reply: str, for_letter: str | None) -> Verdict | None:
        """A reply's verdict as FOR, AGAINST or TIE, whatever labels the judge was shown."""
        if for_letter is None:
            return parse_verdict(reply)
        return parse_letter_verdict(reply, for_letter)
