"""The `Judge` interface: build messages, call, parse, repair once, give a result.

A judge reads a subject (a debate's transcript today; a BBQ answer or a pair of replies in the
tasks to come) as seen under one view (a presentation: which labels, in which order) and gives a
`Reading`, or None when its reply could not be read even after one repair request. Subclasses say
only what differs: the messages, the generation settings, how to parse a reply and how to ask
for a repair. `Judge.ask` is the one place the sequence is written, and every call goes through
the runner's `Caller` (limits, retries, a `calls` row per attempt).

Simplified on purpose: one repair at most, and a judge that reads log-probabilities has no repair
(a missing answer token will not appear on a second try of the same one-token request).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, TypeVar

from arena.backends.base import Completion, GenerateSettings, Message
from arena.calling import Caller, CallResult

Subject = TypeVar("Subject")
View = TypeVar("View")


@dataclass(frozen=True)
class Reading:
    """What a judge's reply said: the winner, why, and P(FOR) when read from log-probabilities."""

    winner: str
    rationale: str
    prob_for: float | None = None


@dataclass(frozen=True)
class Asked:
    """The outcome of one `Judge.ask`: the reading (None: unreadable) and the calls it took."""

    reading: Reading | None
    results: list[CallResult]

    @property
    def raw_text(self) -> str:
        """The judge's last reply."""
        return self.results[-1].completion.text

    @property
    def repaired(self) -> bool:
        return len(self.results) > 1


class Judge(ABC, Generic[Subject, View]):
    """A model that reads subjects and gives readings."""

    def __init__(self, name: str, model_key: str):
        self.name = name
        """The judge's config name (`verdicts.judge`)."""
        self.model_key = model_key
        """The caller's key for the judge's backend."""

    @abstractmethod
    def messages(self, subject: Subject, view: View) -> list[Message]:
        """What the judge is sent."""

    def settings(self, base: GenerateSettings) -> GenerateSettings:
        """The generation settings of a judging call, given the judge's own."""
        return base

    @abstractmethod
    def parse(self, completion: Completion, view: View) -> Reading | None:
        """The reading in a reply, or None."""

    def repair(self, messages: list[Message], reply: str, view: View) -> list[Message] | None:
        """The messages of a repair request after an unreadable `reply`; None: no repair."""
        return None

    async def ask(
        self,
        caller: Caller,
        subject: Subject,
        view: View,
        settings: GenerateSettings,
        unit_id: str,
    ) -> Asked:
        """Build the messages, call, parse; ask once more with a repair request if unreadable."""
        messages = self.messages(subject, view)
        settings = self.settings(settings)
        result = await caller.call(
            self.model_key, messages, settings, purpose="judge", debate_id=unit_id
        )
        results = [result]
        reading = self.parse(result.completion, view)
        if reading is None:
            repair = self.repair(messages, result.completion.text, view)
            if repair is not None:
                result = await caller.call(
                    self.model_key, repair, settings, purpose="judge_repair", debate_id=unit_id
                )
                results.append(result)
                reading = self.parse(result.completion, view)
        return Asked(reading, results)
