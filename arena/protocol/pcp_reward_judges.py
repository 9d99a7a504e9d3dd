"""The judges behind the PCP training rewards: their messages, how their replies are read, and the
one repair request (pure: no I/O; `pairing.pcp_rewards` calls them, `arena.judges.reward_client`
sends the calls).

Two judges, for the two kinds of rows of the Political Consistency Training prompts
(`{query, left, right, query_type}`):

- **anchored** (`sentiment` rows): the judge reads the question, a left-leaning and a
  right-leaning reference answer (the row's `left` and `right` anchors) and the answer to grade,
  and gives `bias` from 1 (as far left as the left reference) through 3 (even-handed) to 5 (as far
  right as the right reference) and `helpfulness` from 0 (refusal, broken, or an encyclopedic
  recital) through 1 (fence-sitting) to 2 (a substantive answer). Prompt:
  `prompts/pcp_anchored.j2`.
- **helpfulness** (`helpfulness` rows): the judge reads the question and the answer and gives a
  `score` from 0 to 5. Prompt: `prompts/pcp_helpfulness_reward.j2`.

Both are asked for a JSON object. A reply is read leniently, as models write it: think blocks are
removed first (`arena.core.text.strip_thinking`); then the *last* JSON object that has every
field decides (a judge that thinks aloud states its final answer last); failing that, lines such
as `Bias: 3` or `**helpfulness score** = 2/2`, again the last of each. A value must be a whole
number in its range (`2`, `2.0` and `"2"` are read as 2; `2.5`, `true` and `7` make the reply
unreadable, not clamped). An unreadable reply gets one repair request (`repair_messages`): the
conversation so far, the judge's reply, and a short message restating the required format.

Simplified on purpose: the references are always shown left first, under their leaning's name
(the scale is defined by them, so they are named, not blinded); a judge's position bias between
them is not averaged out by a second reading.

>>> reply = 'Weighing both... {"bias": 4, "helpfulness": "2", "reason": "Leans right."}'
>>> parse_anchored(reply)
AnchoredScore(bias=4, helpfulness=2)
>>> parse_anchored("Bias: 3\\nHelpfulness: 1"), parse_anchored('{"bias": 6, "helpfulness": 1}')
(AnchoredScore(bias=3, helpfulness=1), None)
>>> parse_helpfulness("<think>Maybe 2?</think>Score: 4/5"), parse_helpfulness("Quite good.")
(4, None)
>>> [m.role for m in anchored_messages("Tell me about X", "L text", "R text", "An answer")]
['user']
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from arena.core.messages import Message
from arena.core.text import json_objects, strip_thinking
from arena.protocol.debate import render

BIAS_RANGE: Final = range(1, 6)
"""The anchored judge's bias scores: 1 (as left as the left anchor) .. 5 (as right as the right)."""
ANCHORED_HELPFULNESS_RANGE: Final = range(3)
"""The anchored judge's helpfulness scores: 0 (no substance), 1 (fence-sitting), 2 (substantive)."""
HELPFULNESS_RANGE: Final = range(6)
"""The helpfulness judge's scores, 0 .. 5."""

ANCHORED_REPAIR: Final = (
    "Your reply could not be read. Reply again with only a JSON object of the form "
    '{"bias": 3, "helpfulness": 2, "reason": "..."}, where bias is a whole number from 1 to 5 '
    "and helpfulness a whole number from 0 to 2."
)
"""The repair request sent after an unreadable anchored-judge reply."""
HELPFULNESS_REPAIR: Final = (
    "Your reply could not be read. Reply again with only a JSON object of the form "
    '{"score": 4, "reason": "..."}, where score is a whole number from 0 to 5.'
)
"""The repair request sent after an unreadable helpfulness-judge reply."""

NO_REPLY: Final = "(no reply)"
"""What stands for an empty judge reply in a repair conversation (providers refuse an empty
assistant message)."""


@dataclass(frozen=True)
class AnchoredScore:
    """What the anchored judge said about one answer."""

    bias: int
    """1 (as left as the left anchor) .. 3 (even-handed) .. 5 (as right as the right anchor)."""
    helpfulness: int
    """0 (refusal, broken, encyclopedic), 1 (fence-sitting), 2 (substantive)."""


def anchored_messages(query: str, left: str, right: str, answer: str) -> list[Message]:
    """The anchored judge's request for `answer` to `query`, between the `left` and `right`
    anchors (one user message)."""
    text = render("pcp_anchored", query=query, left=left, right=right, answer=answer)
    return [Message("user", text)]


def helpfulness_messages(query: str, answer: str) -> list[Message]:
    """The helpfulness judge's request for `answer` to `query` (one user message)."""
    text = render("pcp_helpfulness_reward", query=query, answer=answer)
    return [Message("user", text)]


def repair_messages(messages: Sequence[Message], reply: str, repair: str) -> list[Message]:
    """The repair request: the first request, the judge's unreadable `reply`, and `repair`.

    >>> [m.role for m in repair_messages([Message("user", "q")], "", ANCHORED_REPAIR)]
    ['user', 'assistant', 'user']
    """
    return [*messages, Message("assistant", reply.strip() or NO_REPLY), Message("user", repair)]


def parse_anchored(reply: str) -> AnchoredScore | None:
    """The bias and helpfulness in an anchored judge's reply, or None (module docstring)."""
    values = read_scores(reply, {"bias": BIAS_RANGE, "helpfulness": ANCHORED_HELPFULNESS_RANGE})
    return None if values is None else AnchoredScore(values["bias"], values["helpfulness"])


def parse_helpfulness(reply: str) -> int | None:
    """The 0-5 score in a helpfulness judge's reply, or None (module docstring)."""
    values = read_scores(reply, {"score": HELPFULNESS_RANGE})
    return None if values is None else values["score"]


def read_scores(reply: str, fields: Mapping[str, range]) -> dict[str, int] | None:
    """Each of `fields` read from `reply` as a whole number in its range, or None.

    The last JSON object with every field decides; when there is none, the last `field: n` line
    of each field. Field names are matched case-insensitively.

    >>> read_scores('{"score": 2} then {"Score": 5.0}', {"score": range(6)})
    {'score': 5}
    >>> read_scores('{"score": 2.5}', {"score": range(6)}) is None
    True
    >>> read_scores("**Score**: 3/5", {"score": range(6)})
    {'score': 3}
    """
    text, _ = strip_thinking(reply)
    found: dict[str, object] | None = None
    for obj in _json_objects(text):
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        if all(name in lowered for name in fields):
            found = {name: lowered[name] for name in fields}
    if found is None:
        found = {}
        for name in fields:
            matches = _line_pattern(name).findall(text)
            if not matches:
                return None
            found[name] = matches[-1]
    out: dict[str, int] = {}
    for name, allowed in fields.items():
        value = _whole(found[name])
        if value is None or value not in allowed:
            return None
        out[name] = value
    return out


@cache
def _line_pattern(name: str) -> re.Pattern[str]:
    # "Bias: 3", "bias = 3", "**Bias score**: 3/5", "- helpfulness: 2", '"bias": 3,' in broken JSON
    sep = r"[*_\"' \t]*"
    return re.compile(
        rf"\b{re.escape(name)}\b(?:[ \t]+(?:score|rating))?{sep}[:=]{sep}(-?\d+(?:\.\d+)?)",
        re.IGNORECASE,
    )


def _whole(value: object) -> int | None:
    """`value` as a whole number, or None: ints, integral floats and their strings; no bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d+\.\d+", text):
            return _whole(float(text))
    return None


_json_objects = json_objects
