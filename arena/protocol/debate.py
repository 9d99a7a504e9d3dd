"""The debate protocol: who speaks when, in what role, and what each speaker is shown.

FOR opens and the sides alternate: FOR speaks at odd turn indices (1-based), AGAINST at even ones.
Each side's first turn is its opening, its last its closing, the ones between rebuttals.

Prompts are laid out so that vLLM's prefix cache can reuse them: a side's prompt for its next turn
is its previous prompt, then its own reply as an assistant message, then one new user message with
the opponent's latest turn and the next instruction. The system prompt never changes within a
debate. So each prompt is an exact prefix of the same side's next one (`Transcript.prompt_for`).

>>> [side_of(i) for i in (1, 2, 3)]
['FOR', 'AGAINST', 'FOR']
>>> [role_of(i, 6) for i in range(1, 7)]
['opening', 'opening', 'rebuttal', 'rebuttal', 'closing', 'closing']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache

import jinja2

from arena.core.messages import Message
from arena.protocol.transcript import END_OF_TRANSCRIPT, LETTERS, debater_label, turn_header

SIDES = ("FOR", "AGAINST")


def side_of(turn_index: int) -> str:
    return "FOR" if turn_index % 2 == 1 else "AGAINST"


def other_side(side: str) -> str:
    return "AGAINST" if side == "FOR" else "FOR"


def turns_of(side: str, turns: int) -> list[int]:
    """The turn indices at which `side` speaks."""
    first = 1 if side == "FOR" else 2
    return list(range(first, turns + 1, 2))


def role_of(turn_index: int, turns: int) -> str:
    own = turns_of(side_of(turn_index), turns)
    if turn_index == own[0]:
        return "opening"
    return "closing" if turn_index == own[-1] else "rebuttal"


def word_limit(max_tokens: int) -> int:
    """Words to ask for so that a turn fits in `max_tokens` (about 0.7 words a token, rounded)."""
    return max(20, int(max_tokens * 0.7) // 10 * 10)


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("arena.protocol", "prompts"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        auto_reload=False,  # templates ship with the package; no stat() per render
    )


@cache
def _judge_system(logprob: bool) -> str:
    return render("judge_system", logprob=logprob)


@cache
def _letter_judge_system(logprob: bool) -> str:
    return render("judge_letters_system", logprob=logprob)


def render(name: str, **values: object) -> str:
    """Render the prompt template `arena/protocol/prompts/<name>.j2`."""
    return _templates().get_template(f"{name}.j2").render(**values).strip()


@lru_cache(maxsize=4096)
def system_prompt(motion: str, side: str, turns: int, max_tokens: int, persona: str | None) -> str:
    """A debater's system prompt; the same for every debate on a motion and side (cached)."""
    return render(
        "debater_system",
        motion=motion,
        side=side,
        opponent_side=other_side(side),
        turns=turns,
        own_turns=len(turns_of(side, turns)),
        word_limit=word_limit(max_tokens),
        persona=persona,
    )


@dataclass
class Transcript:
    """A debate in progress: the clean text of each turn so far, and each side's chat so far."""

    motion: str
    turns: int
    max_tokens: int
    personas: dict[str, str | None] = field(default_factory=dict)
    """Each side's persona, if its model has one."""
    texts: list[str] = field(default_factory=list)
    _chats: dict[str, list[Message]] = field(default_factory=dict)
    _pending: dict[int, Message] = field(default_factory=dict)
    _judge_views: dict[tuple[bool, str | None], list[Message]] = field(default_factory=dict)
    """What judges are shown, per (logprob, for_letter): built once for all judges."""

    def __post_init__(self) -> None:
        for side in SIDES:
            persona = self.personas.get(side)
            system = system_prompt(self.motion, side, self.turns, self.max_tokens, persona)
            self._chats[side] = [Message("system", system)]

    @property
    def next_turn(self) -> int:
        return len(self.texts) + 1

    @property
    def finished(self) -> bool:
        return len(self.texts) >= self.turns

    def prompt_for(self, turn_index: int) -> list[Message]:
        """The messages the speaker of `turn_index` is sent (the turns before it must be added)."""
        if turn_index != self.next_turn:
            raise ValueError(f"turn {turn_index} asked for, but the next turn is {self.next_turn}")
        side = side_of(turn_index)
        instruction = render(
            "debater_turn",
            turn_index=turn_index,
            turns=self.turns,
            role=role_of(turn_index, self.turns),
            side=side,
            opponent_side=other_side(side),
            opponent_turn=turn_index - 1,
            opponent_text=self.texts[-1] if self.texts else None,
        )
        message = Message("user", instruction)
        self._pending[turn_index] = message
        return [*self._chats[side], message]

    def add(self, turn_index: int, text: str) -> None:
        """Record the clean text of the next turn."""
        if turn_index != self.next_turn:
            raise ValueError(f"turn {turn_index} added, but the next turn is {self.next_turn}")
        side = side_of(turn_index)
        instruction = self._pending.pop(turn_index, None)
        if instruction is None:
            self.prompt_for(turn_index)
            instruction = self._pending.pop(turn_index)
        self._chats[side].extend([instruction, Message("assistant", text)])
        self.texts.append(text)

    def judge_messages(self, logprob: bool = False, for_letter: str | None = None) -> list[Message]:
        """What a judge is shown: the motion and the turns labelled by side, no model names.

        With `logprob`, the judge is asked for one word (FOR or AGAINST) instead of JSON. With
        `for_letter` ("A" or "B"), the speakers are labelled neutrally instead: the FOR speaker is
        Debater `for_letter`, the AGAINST speaker the other letter, and the judge is asked which
        debater won (A, B or TIE; one letter with `logprob`). Built once per view and finished
        transcript, since every judge of the same view sees the same messages.
        """
        view = (logprob, for_letter)
        cached = self._judge_views.get(view)
        if cached is not None and self.finished:
            return cached
        if for_letter is None:
            labels = {"FOR": "FOR", "AGAINST": "AGAINST"}
            system, user = _judge_system(logprob), "judge_user"
        else:
            if for_letter not in LETTERS:
                raise ValueError(f"for_letter must be one of {LETTERS}, not {for_letter!r}")
            against_letter = LETTERS[1 - LETTERS.index(for_letter)]
            labels = {"FOR": debater_label(for_letter), "AGAINST": debater_label(against_letter)}
            system, user = _letter_judge_system(logprob), "judge_letters_user"
        turns = [
            {
                "header": turn_header(i, labels[side_of(i)], role_of(i, self.turns)),
                "text": text,
            }
            for i, text in enumerate(self.texts, start=1)
        ]
        messages = [
            Message("system", system),
            Message(
                "user",
                render(
                    user,
                    motion=self.motion,
                    transcript=turns,
                    end_marker=END_OF_TRANSCRIPT,
                    logprob=logprob,
                ),
            ),
        ]
        if self.finished:
            self._judge_views[view] = messages
        return messages
