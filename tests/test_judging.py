"""Reading verdicts robustly, and combining judges."""

from __future__ import annotations

import pytest

from arena.judges.parse import majority, parse_verdict


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ('{"winner": "FOR", "rationale": "r"}', "FOR"),
        ('```json\n{"winner": "AGAINST", "rationale": "r"}\n```', "AGAINST"),
        ('After reading both sides: {"Winner": "tie", "Rationale": "even"} Thanks!', "TIE"),
        ('{"note": 1} then {"winner": " for ", "rationale": "r"}', "FOR"),
        ('{"scores": {"a": 1}, "winner": "AGAINST"}', "AGAINST"),
        ('{"winner": "NOBODY"} {"winner": "FOR"}', "FOR"),
    ],
)
def test_parses_verdicts_in_noisy_replies(reply: str, winner: str) -> None:
    verdict = parse_verdict(reply)
    assert verdict is not None and verdict.winner == winner


@pytest.mark.parametrize(
    "reply",
    ["FOR wins clearly.", '{"winner": "MAYBE"}', "{not json}", "", '{"winner": 1}', "[1, 2]"],
)
def test_unreadable_replies_give_none(reply: str) -> None:
    assert parse_verdict(reply) is None


@pytest.mark.parametrize(
    ("votes", "outcome"),
    [
        (["FOR"], "FOR"),
        (["FOR", "FOR", "AGAINST"], "FOR"),
        (["FOR", "AGAINST"], "TIE"),
        (["TIE", "AGAINST", "AGAINST"], "AGAINST"),
        (["TIE", "FOR", "AGAINST"], "TIE"),
        ([], None),
    ],
)
def test_majority(votes: list[str], outcome: str | None) -> None:
    assert majority(votes) == outcome
