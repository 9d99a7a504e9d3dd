"""The debate task: one unit is one debate, played turn by turn and then judged.

FOR opens and the sides alternate (`arena.protocol.debate`); each finished turn and each verdict
is handed to the store's writer at once. The debate's status goes pending -> running -> judging
-> done (or failed, with the error), and its winner is the majority of the verdicts that count,
one per judge (`arena.judges.debate`).

Resuming: `recorded` reads, for a chunk of debates, their status, the gap-free prefix of their
turns and their verdicts by (judge, variant). A debate continues from its next turn, with its
transcript rebuilt from the stored turns; only the verdicts not yet recorded are asked for.

Every row is queued after the rows it depends on (a turn after its call's `calls` row, `done`
after the verdicts), and the writer keeps a prefix of what was queued, so a write failure leaves
each debate either fully recorded or resumable. `tally` checks it when the run ends: a debate
counts as done only if the store holds its `done` status, all its turns (gap-free, each with its
`calls` row) and every verdict its judges owe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from arena.backends import Backend, GenerateSettings, GenerationParams, create_backend
from arena.config import Topic, TournamentConfig
from arena.core.aio import gather_all
from arena.core.clock import now
from arena.core.ids import content_id
from arena.core.text import strip_thinking
from arena.judges.debate import DebateJudge, Recorded
from arena.judges.parse import majority
from arena.protocol.debate import Transcript, role_of, side_of
from arena.records import DebateRow, DebateStatus, TurnRow, VerdictRow
from arena.runner import RunContext, Tally, Task
from storage import Store


@dataclass(frozen=True)
class DebatePlan:
    """One debate of a run: a topic, who argues which side, and which replicate."""

    debate_id: str
    topic: Topic
    for_model: str
    against_model: str
    replicate: int


def debate_id(run_id: str, topic_id: str, for_model: str, against_model: str, rep: int) -> str:
    return content_id("debate", run_id, topic_id, for_model, against_model, rep)


@dataclass
class DebateState:
    """What a run already recorded of one debate."""

    status: str = "pending"
    texts: list[str] = field(default_factory=list)
    verdicts: dict[str, dict[str, Recorded]] = field(default_factory=lambda: defaultdict(dict))
    """judge -> variant -> verdict."""


def generate_settings(
    params: GenerationParams, max_tokens: int, seed: int, replicate: int
) -> GenerateSettings:
    """A model's generation settings; replicates get distinct seeds, so they differ."""
    own_seed = params.seed if params.seed is not None else seed
    return GenerateSettings(
        max_tokens=params.max_tokens or max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=own_seed + replicate,
        stop=tuple(params.stop),
        repetition_penalty=params.repetition_penalty,
        no_repeat_ngram_size=params.no_repeat_ngram_size,
    )


class DebateTask(Task[DebatePlan, DebateState]):
    """Debates between the contestants of a tournament config, judged by its judges."""

    unit_name: ClassVar[str] = "debate"
    step_name: ClassVar[str] = "turn"

    def __init__(self, config: TournamentConfig, store: Store, run_id: str):
        self.config = config
        self.settings = config.settings
        self.store = store
        self.run_id = run_id
        self.contestants = {c.name: c for c in config.contestants}
        # A model may be both a contestant and a judge: judges get their own backend and limits.
        self.judges = [
            DebateJudge(
                j.name,
                f"judge:{j.name}",
                logprob=j.verdict == "logprob",
                tie_margin=j.tie_margin,
                top_logprobs=j.top_logprobs,
                swap_check=j.swap_check,
                average_orders=j.average_orders,
            )
            for j in config.judges
        ]
        self._judge_params = {f"judge:{j.name}": j.params for j in config.judges}

    def backends(self) -> dict[str, Backend]:
        """The backends the task calls, by the caller's key."""
        out = {c.name: create_backend(c.provider) for c in self.config.contestants}
        out.update({f"judge:{j.name}": create_backend(j.provider) for j in self.config.judges})
        return out

    # --- recording -----------------------------------------------------------------------------

    def _record(self, row: TurnRow | VerdictRow) -> None:
        self.store.writer.insert(row.TABLE, row.row(), on_conflict="ignore")

    def _status(
        self, plan: DebatePlan, status: str, *, winner: str | None = None, error: str | None = None
    ) -> None:
        row = DebateStatus(plan.debate_id, status, winner, error, now())
        self.store.writer.insert(row.TABLE, row.row(), on_conflict="update")

    # --- the Task interface ----------------------------------------------------------------------

    def unit_id(self, unit: DebatePlan) -> str:
        return unit.debate_id

    def register(self, units: Sequence[DebatePlan]) -> None:
        created = now()
        for p in units:
            row = DebateRow(
                debate_id=p.debate_id,
                run_id=self.run_id,
                topic_id=p.topic.id,
                for_model=p.for_model,
                against_model=p.against_model,
                replicate=p.replicate,
                turns_planned=self.settings.turns,
                status="pending",
                created_at=created,
                updated_at=created,
            )
            self.store.writer.insert(row.TABLE, row.row(), on_conflict="ignore")

    def recorded(self, units: Sequence[DebatePlan]) -> Mapping[str, DebateState]:
        ids = [u.debate_id for u in units]
        states: dict[str, DebateState] = {}
        for did, status in self.store.read(
            "select debate_id, status from debates where debate_id in (select unnest(?))", [ids]
        ):
            states[did] = DebateState(status)
        for did, index, text in self.store.read(
            "select debate_id, turn_index, text from turns where debate_id in (select unnest(?))"
            " order by debate_id, turn_index",
            [ids],
        ):
            texts = states[did].texts
            if index == len(texts) + 1:  # only a gap-free prefix of turns can be continued
                texts.append(text)
        for did, judge, variant, winner, valid, p_for in self.store.read(
            "select debate_id, judge, variant, winner, valid, prob_for from verdicts"
            " where debate_id in (select unnest(?))",
            [ids],
        ):
            states[did].verdicts[judge][variant] = Recorded(winner if valid else None, p_for)
        return states

    def tally(self, units: Sequence[DebatePlan]) -> Tally:
        """Which of `units` the store holds in full, and their turns and verdicts: read back with
        counts only (no texts), so the run's final check costs little."""
        ids = [u.debate_id for u in units]
        debates = self.store.read(
            "select d.debate_id, d.status, d.turns_planned, coalesce(t.n, 0),"
            " coalesce(t.last, 0), coalesce(t.orphans, 0) from debates d left join ("
            "  select t.debate_id, count(*) as n, max(t.turn_index) as last,"
            "   count(*) filter (where c.call_id is null) as orphans"
            "  from turns t left join calls c on c.call_id = t.call_id"
            "  where t.debate_id in (select unnest(?)) group by t.debate_id"
            ") t using (debate_id) where d.debate_id in (select unnest(?))",
            [ids, ids],
        )
        verdicts: dict[str, dict[str, dict[str, Recorded]]] = defaultdict(lambda: defaultdict(dict))
        n_verdicts = 0
        for did, judge, variant, winner, valid, p_for in self.store.read(
            "select debate_id, judge, variant, winner, valid, prob_for from verdicts"
            " where debate_id in (select unnest(?))",
            [ids],
        ):
            verdicts[did][judge][variant] = Recorded(winner if valid else None, p_for)
            n_verdicts += 1
        finished = steps = 0
        for did, status, planned, n_turns, last, orphans in debates:
            steps += n_turns
            # turn_index is unique per debate and starts at 1: gap-free when count = max.
            turns_ok = n_turns == last == planned and orphans == 0
            judged = all(j.complete(verdicts[did].get(j.name, {})) for j in self.judges)
            finished += status == "done" and turns_ok and judged
        return Tally(finished=finished, steps=steps, verdicts=n_verdicts)

    def finished(self, unit: DebatePlan, state: DebateState | None) -> bool:
        if state is None or state.status != "done":
            return False
        return all(j.complete(state.verdicts.get(j.name, {})) for j in self.judges)

    def failed(self, unit: DebatePlan, error: str) -> None:
        self._status(unit, "failed", error=error)

    def not_started(self, unit: DebatePlan) -> None:
        self._status(unit, "pending")

    async def play(self, unit: DebatePlan, state: DebateState | None, ctx: RunContext) -> None:
        settings = self.settings
        personas = {
            "FOR": self.contestants[unit.for_model].persona,
            "AGAINST": self.contestants[unit.against_model].persona,
        }
        transcript = Transcript(unit.topic.motion, settings.turns, settings.max_tokens, personas)
        state = state or DebateState()
        for index, text in enumerate(state.texts[: settings.turns], 1):
            transcript.add(index, text)
        if not transcript.finished:
            self._status(unit, "running")
        while not transcript.finished:
            await self._next_turn(unit, transcript, ctx)
        self._status(unit, "judging")
        winners = await gather_all(
            *(
                judge.verdict(
                    ctx.caller,
                    transcript,
                    generate_settings(
                        self._judge_params[judge.model_key],
                        settings.judge_max_tokens,
                        settings.seed,
                        unit.replicate,
                    ),
                    unit.debate_id,
                    state.verdicts.get(judge.name, {}),
                    lambda row: self._verdict(row, ctx),
                )
                for judge in self.judges
            )
        )
        self._status(unit, "done", winner=majority(w for w in winners if w))

    def _verdict(self, row: VerdictRow, ctx: RunContext) -> None:
        self._record(row)
        ctx.progress.verdicts += 1

    async def _next_turn(self, plan: DebatePlan, transcript: Transcript, ctx: RunContext) -> None:
        index = transcript.next_turn
        side = side_of(index)
        model = plan.for_model if side == "FOR" else plan.against_model
        contestant = self.contestants[model]
        result = await ctx.caller.call(
            model,
            transcript.prompt_for(index),
            generate_settings(
                contestant.params, self.settings.max_tokens, self.settings.seed, plan.replicate
            ),
            purpose="turn",
            debate_id=plan.debate_id,
            # A new debate starts only while the budget allows; debates under way finish.
            before_send=ctx.check_budget if index == 1 else None,
        )
        completion = result.completion
        text, thinking = strip_thinking(completion.text)
        self._record(
            TurnRow(
                debate_id=plan.debate_id,
                turn_index=index,
                side=side,
                role=role_of(index, self.settings.turns),
                model=model,
                text=text,
                raw_text=completion.text,
                reasoning=completion.reasoning or thinking,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                cost_usd=completion.cost_usd,
                latency_s=result.latency_s,
                finish_reason=completion.finish_reason,
                call_id=result.call_id,
                created_at=now(),
            )
        )
        transcript.add(index, text)
        ctx.progress.steps += 1
