"""Reading a debate judge's reply, and combining several judges into a debate's outcome.

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

Small models write poor JSON, so a judge can instead be asked for one word and read from the
first token's log-probabilities: P(FOR) = p(tokens that begin "FOR") / (p(those) + p(tokens that
begin "AGAINST")), with "AGAINST" often split into several tokens ("AG", "AIN", "ST").

>>> round(prob_for([(" FOR", -0.105), ("AG", -2.3), ("The", -4.0)]), 3)
0.9
>>> verdict_from_prob(0.52, tie_margin=0.05), verdict_from_prob(0.2, tie_margin=0.05)
('TIE', 'AGAINST')

A judge shown neutral labels (Debater A, Debater B) answers with letters, which are mapped back to
sides before anything is recorded (`arena.judges.debate` says when a judge is shown them).

>>> parse_letter_verdict('{"winner": "Debater A", "rationale": "Clearer."}', for_letter="B")
Verdict(winner='AGAINST', rationale='Clearer.')
>>> round(prob_letter_a([("A", -0.105), (" b", -2.3), ("The", -4.0)]), 3)
0.9
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arena.core.text import json_objects
from arena.protocol.transcript import LETTERS

WINNERS = ("FOR", "AGAINST", "TIE")


@dataclass(frozen=True)
class Verdict:
    winner: str
    rationale: str


_json_objects = json_objects


def parse_verdict(reply: str, answers: Mapping[str, str] | None = None) -> Verdict | None:
    """The verdict in a judge's reply, or None if there is no readable one.

    `answers`: the winners allowed (upper case) and the verdict each stands for; by default FOR,
    AGAINST and TIE, each for itself.
    """
    for obj in _json_objects(reply):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        winner = lowered.get("winner")
        if not isinstance(winner, str):
            continue
        winner = winner.strip().upper()
        if answers is not None:
            winner = answers.get(winner, "")
        if winner not in WINNERS:
            continue
        rationale = lowered.get("rationale", lowered.get("reason", ""))
        return Verdict(winner, rationale if isinstance(rationale, str) else json.dumps(rationale))
    return None


def side_of_letter(letter: str, for_letter: str) -> str:
    """FOR, AGAINST or TIE for a neutral-label answer, when the FOR speaker was `for_letter`.

    >>> side_of_letter("A", "A"), side_of_letter("A", "B"), side_of_letter("TIE", "B")
    ('FOR', 'AGAINST', 'TIE')
    """
    if letter == "TIE":
        return "TIE"
    return "FOR" if letter == for_letter else "AGAINST"


def parse_letter_verdict(reply: str, for_letter: str) -> Verdict | None:
    """A neutral-label judge's verdict (A, B or TIE; "Debater A" is read as A), as FOR, AGAINST or
    TIE, when the FOR speaker was called `for_letter`."""
    answers = {"TIE": "TIE"}
    for letter in LETTERS:
        side = side_of_letter(letter, for_letter)
        answers[letter] = answers[f"DEBATER {letter}"] = side
    return parse_verdict(reply, answers)


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


def _word_prefix(token: str) -> str:
    return token.strip().strip("\"'*`.:,!").upper()


def prob_for(top_logprobs: Iterable[tuple[str, float]]) -> float | None:
    """P(FOR) among FOR and AGAINST in the first token's alternatives; None if neither is."""
    p_for = p_against = 0.0
    for token, logprob in top_logprobs:
        word = _word_prefix(token)
        if not word:
            continue
        if "FOR".startswith(word):
            p_for += math.exp(logprob)
        elif "AGAINST".startswith(word):
            p_against += math.exp(logprob)
    total = p_for + p_against
    return p_for / total if total > 0 else None


def prob_letter_a(top_logprobs: Iterable[tuple[str, float]]) -> float | None:
    """P(A) among the answers A and B in the first token's alternatives; None if neither is.

    Only a token that is the letter itself counts (any case, with spaces or punctuation around
    it): a first token "As" or "Both" is not an answer.
    """
    p_a = p_b = 0.0
    for token, logprob in top_logprobs:
        word = _word_prefix(token)
        if word == "A":
            p_a += math.exp(logprob)
        elif word == "B":
            p_b += math.exp(logprob)
    total = p_a + p_b
    return p_a / total if total > 0 else None


def verdict_from_prob(p_for: float, tie_margin: float) -> str:
    """FOR or AGAINST by P(FOR), TIE when it is within `tie_margin` of one half."""
    if abs(p_for - 0.5) <= tie_margin:
        return "TIE"
    return "FOR" if p_for > 0.5 else "AGAINST"
