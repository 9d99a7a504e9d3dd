"""The prompt of a preference pair, rendered by arena's own templates, in pieces SQL can join.

Two contexts (`PairOptions.context`):

- `none` (the default, PERSUADE's choice): the debater's task for (topic, side, turn) as chat
  messages, the system prompt for the side and the turn's instruction, with no transcript and no
  persona. It is the same for every pair of a key, so it is rendered once per key.
- `transcript`: the whole chat the chosen speaker was sent for that turn: its system prompt (with
  its persona, if its model had one), then for each of its earlier turns the instruction (with
  the opponent's turn before it) and its own reply, then the instruction for this turn with the
  opponent's latest turn. Exactly `arena.protocol.debate.Transcript.prompt_for`.

Transcripts are long and many, so Python renders only what does not depend on the texts: the
system prompts (few) and each instruction split around the opponent's text, `head` + text +
`tail`; SQL puts the turns' texts between them (see `pairing.pairs`).

>>> parts = instruction_parts(4)
>>> [p["turn_index"] for p in parts]
[1, 2, 3, 4]
>>> parts[0]["tail"] is None, parts[1]["head"].startswith("Your opponent (FOR) said in turn 1")
(True, True)
"""

from __future__ import annotations

from typing import Any

from arena.protocol.debate import other_side, render, role_of, side_of, system_prompt

# Stands for the opponent's text while an instruction is rendered; split on afterwards.
_OPPONENT = "\x00opponent-text\x00"


def _instruction(turn_index: int, turns: int, opponent_text: str | None) -> str:
    side = side_of(turn_index)
    return render(
        "debater_turn",
        turn_index=turn_index,
        turns=turns,
        role=role_of(turn_index, turns),
        side=side,
        opponent_side=other_side(side),
        opponent_turn=turn_index - 1,
        opponent_text=opponent_text,
    )


def prompt_messages(
    motion: str, side: str, turn_index: int, turns: int, max_tokens: int
) -> list[dict[str, str]]:
    """The chat a debater is given for `turn_index`, as arena renders it, minus the transcript.

    The system prompt for its side and the turn's instruction with no opponent text: what the
    speaker of an opening sees exactly, and the task (not the context) of a later turn.
    """
    system = system_prompt(motion, side, turns, max_tokens, None)
    instruction = _instruction(turn_index, turns, None)
    return [{"role": "system", "content": system}, {"role": "user", "content": instruction}]


def instruction_parts(turns: int) -> list[dict[str, Any]]:
    """Each turn's instruction in a `turns`-turn debate, split around the opponent's text.

    The first turn has no opponent text: its `head` is the whole instruction, its `tail` None.
    """
    parts: list[dict[str, Any]] = []
    for turn_index in range(1, turns + 1):
        if turn_index == 1:
            head, tail = _instruction(1, turns, None), None
        else:
            rendered = _instruction(turn_index, turns, _OPPONENT)
            if rendered.count(_OPPONENT) != 1:
                raise RuntimeError("debater_turn.j2 must show the opponent's text exactly once")
            head, tail = rendered.split(_OPPONENT)
        parts.append({"turns": turns, "turn_index": turn_index, "head": head, "tail": tail})
    return parts


def system_content(motion: str, side: str, turns: int, max_tokens: int, persona: str | None) -> str:
    """The system prompt a debater on `side` was given (`arena.protocol.debate.system_prompt`)."""
    return system_prompt(motion, side, turns, max_tokens, persona)
