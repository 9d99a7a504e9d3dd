"""Debate judges: which side won a finished debate.

A judge reads the transcript under one or two presentations and records one `verdicts` row per
presentation, plus a combined row when it averages:

| judge option      | shown                              | rows (`variant`, `counts`)                  |
|-------------------|------------------------------------|---------------------------------------------|
| (none)            | speakers labelled FOR and AGAINST  | sides (counts)                              |
| `swap_check`      | Debater A/B, FOR as A, then as B   | for_a (counts), for_b                       |
| `average_orders`  | Debater A/B, FOR as A, then as B   | for_a, for_b, both (counts): the two        |
|                   |                                    | readings combined                           |

A swap check measures label bias without changing outcomes (the first reading decides, as a
plain neutral-label judge would). Averaging removes a fixed preference for a letter from the
outcome: with `verdict: logprob` the combined P(FOR) is the mean of the two readings' P(FOR), so a
judge that always prefers "A" by the same margin is left with only what it read in the debates;
with JSON verdicts the combined winner is the side both readings agree on, else TIE.

>>> combine([Reading("FOR", "", 0.9), Reading("AGAINST", "", 0.2)], tie_margin=0.1)
Reading(winner='TIE', rationale='P(FOR) = 0.550, the mean of 0.900 (FOR as Debater A) and 0.200 (FOR as Debater B)', prob_for=0.55)
>>> combine([Reading("FOR", "a"), Reading("FOR", "b")], tie_margin=0.0).winner
'FOR'
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from arena.backends.base import Completion, GenerateSettings, Message
from arena.calling import Caller
from arena.core.aio import gather_all
from arena.core.clock import now
from arena.judges.base import Asked, Judge, Reading
from arena.judges.parse import (
    parse_letter_verdict,
    parse_verdict,
    prob_for,
    prob_letter_a,
    verdict_from_prob,
)
from arena.protocol.debate import Transcript, render
from arena.records import VerdictRow

Variant = Literal["sides", "for_a", "for_b", "both"]


@dataclass(frozen=True)
class Presentation:
    """One way of showing a debate to a judge."""

    variant: Variant
    for_letter: str | None
    """None: speakers labelled FOR and AGAINST. "A" or "B": neutral labels, FOR called this."""


SIDES = Presentation("sides", None)
FOR_A = Presentation("for_a", "A")
FOR_B = Presentation("for_b", "B")


@dataclass(frozen=True)
class Recorded:
    """A verdict already in the store (for resuming)."""

    winner: str | None
    """None when not valid."""
    prob_for: float | None


def combine(readings: Sequence[Reading | None], tie_margin: float) -> Reading | None:
    """The averaged verdict of a judge's two readings (FOR as A, FOR as B); None unless both are
    valid."""
    first, second = readings
    if first is None or second is None:
        return None
    if first.prob_for is not None and second.prob_for is not None:
        p = (first.prob_for + second.prob_for) / 2
        why = (
            f"P(FOR) = {p:.3f}, the mean of {first.prob_for:.3f} (FOR as Debater A) and "
            f"{second.prob_for:.3f} (FOR as Debater B)"
        )
        return Reading(verdict_from_prob(p, tie_margin), why, p)
    if first.winner == second.winner:
        return Reading(first.winner, "both orders agree")
    return Reading("TIE", f"the orders disagree ({first.winner} as A, {second.winner} as B)")


class DebateJudge(Judge[Transcript, Presentation]):
    """A judge of debates: JSON or one-token log-probability verdicts, side or neutral labels."""

    def __init__(
        self,
        name: str,
        model_key: str,
        *,
        logprob: bool = False,
        tie_margin: float = 0.0,
        top_logprobs: int = 20,
        swap_check: bool = False,
        average_orders: bool = False,
    ):
        super().__init__(name, model_key)
        self.logprob = logprob
        self.tie_margin = tie_margin
        self.top_logprobs = top_logprobs
        self.average_orders = average_orders
        self.presentations = [FOR_A, FOR_B] if swap_check or average_orders else [SIDES]
        """What the judge is shown, one call (and one reading) each."""
        self.rows: list[tuple[Variant, bool]] = (
            [("for_a", False), ("for_b", False), ("both", True)]
            if average_orders
            else [("for_a", True), ("for_b", False)]
            if swap_check
            else [("sides", True)]
        )
        """The rows a debate gets from this judge: (variant, counts), the counting one once."""

    # --- the Judge interface ------------------------------------------------------------------

    def messages(self, subject: Transcript, view: Presentation) -> list[Message]:
        return subject.judge_messages(logprob=self.logprob, for_letter=view.for_letter)

    def settings(self, base: GenerateSettings) -> GenerateSettings:
        # One token is all a log-probability verdict reads.
        if self.logprob:
            return replace(base, max_tokens=1, top_logprobs=self.top_logprobs)
        return base

    def parse(self, completion: Completion, view: Presentation) -> Reading | None:
        letter = view.for_letter
        if self.logprob:
            alternatives = completion.top_logprobs or []
            if letter is None:
                p_for, source = prob_for(alternatives), ""
            else:
                p_a = prob_letter_a(alternatives)
                p_for = None if p_a is None else (p_a if letter == "A" else 1.0 - p_a)
                source = f" (FOR was Debater {letter})"
            if p_for is None:
                return None
            winner = verdict_from_prob(p_for, self.tie_margin)
            return Reading(winner, f"P(FOR) = {p_for:.3f}{source}", p_for)
        verdict = (
            parse_verdict(completion.text)
            if letter is None
            else parse_letter_verdict(completion.text, letter)
        )
        return None if verdict is None else Reading(verdict.winner, verdict.rationale)

    def repair(
        self, messages: list[Message], reply: str, view: Presentation
    ) -> list[Message] | None:
        if self.logprob:
            return None
        template = "judge_repair" if view.for_letter is None else "judge_letters_repair"
        return [*messages, Message("assistant", reply), Message("user", render(template))]

    # --- a debate's verdicts --------------------------------------------------------------------

    def complete(self, recorded: dict[str, Recorded]) -> bool:
        """Whether every row this judge gives a debate is recorded."""
        return all(variant in recorded for variant, _ in self.rows)

    async def verdict(
        self,
        caller: Caller,
        transcript: Transcript,
        settings: GenerateSettings,
        debate_id: str,
        recorded: dict[str, Recorded],
        record: Callable[[VerdictRow], None],
    ) -> str | None:
        """Ask for the readings not yet recorded, record them (and the combined verdict), and
        return the winner of the verdict that counts (None when it is not valid)."""
        counting = next(variant for variant, counts in self.rows if counts)
        if self.complete(recorded):
            return recorded[counting].winner
        missing = [p for p in self.presentations if p.variant not in recorded]
        asked = await gather_all(
            *(self.ask(caller, transcript, p, settings, debate_id) for p in missing)
        )
        counts = dict(self.rows)
        readings: dict[str, Reading | None] = {}
        for presentation, result in zip(missing, asked, strict=True):
            readings[presentation.variant] = result.reading
            record(self._row(debate_id, presentation.variant, counts[presentation.variant], result))
        if counting in recorded:
            return recorded[counting].winner
        if not self.average_orders:
            reading = readings[counting]
            return reading.winner if reading is not None else None
        for variant in ("for_a", "for_b"):
            if variant not in readings:
                old = recorded[variant]
                readings[variant] = (
                    Reading(old.winner, "", old.prob_for) if old.winner is not None else None
                )
        combined = combine([readings["for_a"], readings["for_b"]], self.tie_margin)
        record(
            VerdictRow(
                debate_id=debate_id,
                judge=self.name,
                variant="both",
                counts=True,
                winner=combined.winner if combined else None,
                rationale=combined.rationale if combined else None,
                valid=combined is not None,
                repaired=False,
                raw_text="",
                prob_for=combined.prob_for if combined else None,
                prompt_tokens=None,
                completion_tokens=None,
                cost_usd=None,
                latency_s=None,
                created_at=now(),
            )
        )
        return combined.winner if combined else None

    def _row(self, debate_id: str, variant: Variant, counts: bool, asked: Asked) -> VerdictRow:
        reading = asked.reading
        completions = [r.completion for r in asked.results]
        return VerdictRow(
            debate_id=debate_id,
            judge=self.name,
            variant=variant,
            counts=counts,
            winner=reading.winner if reading else None,
            rationale=reading.rationale if reading else None,
            valid=reading is not None,
            repaired=asked.repaired,
            raw_text=asked.raw_text,
            prob_for=reading.prob_for if reading else None,
            prompt_tokens=sum(c.prompt_tokens or 0 for c in completions),
            completion_tokens=sum(c.completion_tokens or 0 for c in completions),
            cost_usd=sum(c.cost_usd or 0.0 for c in completions),
            latency_s=sum(r.latency_s for r in asked.results),
            created_at=now(),
        )
