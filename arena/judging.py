"""Reading a judge's verdict, and combining several judges into a debate's outcome.

Judges are asked for `{"winner": "FOR" | "AGAINST" | "TIE", "rationale": "..."}`. Models wrap it
in code fences, put prose around it, or use other cases; `parse_verdict` finds the first JSON
object in the reply that has a `winner` field and reads it. If none is found the engine sends one
repair request; if that fails too the verdict is stored as invalid.

>>> parse_verdict('Sure! ```json\\n{"winner": "against", "rationale": "Better evidence."}\\n```')
Verdict(winner='AGAINST', rationale='Better evidence.')
>>> parse_verdict("FOR wins") is None
True
>>> majority(["FOR", "AGAINST", "FOR"]), majority(["FOR", "AGAINST"]), majority([])
('FOR', 'TIE', None)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

WINNERS = ("FOR", "AGAINST", "TIE")


@dataclass(frozen=True)
class Verdict:
    winner: str
    rationale: str


def _json_objects(text: str) -> Iterable[dict[str, Any]]:
    """Every JSON object that starts at a '{' in `text`, in order."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pass
        else:
            if isinstance(value, dict):
                yield value
        start = text.find("{", start + 1)


def parse_verdict(reply: str) -> Verdict | None:
    """The verdict in a judge's reply, or None if there is no readable one."""
    for obj in _json_objects(reply):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        winner = lowered.get("winner")
        if not isinstance(winner, str):
            continue
        winner = winner.strip().upper()
        if winner not in WINNERS:
            continue
        rationale = lowered.get("rationale", lowered.get("reason", ""))
        return Verdict(winner, rationale if isinstance(rationale, str) else json.dumps(rationale))
    return None


def majority(winners: Iterable[str]) -> str | None:
    """The outcome of several valid verdicts: the most common winner, TIE when the top is shared.

    None when there are no valid verdicts.
    """
    counts = Counter(winners)
    if not counts:
        return None
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return "TIE"
    return ranked[0][0]
