"""Swap-consistency judging: a judge with `swap_check` judges every debate twice, under neutral
labels (Debater A and Debater B), FOR being A the first time and B the second."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb

from arena.core.ids import request_hash
from arena.judges.debate import DebateJudge
from arena.judges.parse import parse_letter_verdict, prob_letter_a
from arena.protocol.debate import Transcript
from arena.protocol.transcript import split_transcript
from eval.report import RankOptions, build_report
from tests.conftest import query as _query
from tests.conftest import sim_models
from tests.conftest import tournament as _run

AGREEMENT_SQL = """
    select v.judge, avg((v.winner = s.winner)::int), count(*)
    from verdicts v join verdicts s on s.debate_id = v.debate_id and s.judge = v.judge
    where v.variant = 'for_a' and s.variant = 'for_b' and v.valid and s.valid
    group by v.judge order by v.judge
"""


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _transcript() -> Transcript:
    transcript = Transcript("This house would test prompts.", 4, 100)
    for index in range(1, 5):
        transcript.add(index, f"Turn text number {index}.")
    return transcript


def test_plain_judge_prompts_are_unchanged() -> None:
    # Pinned: request hashes of judges without swap_check (and so resuming old runs) depend on them.
    transcript = _transcript()
    hashes = [
        request_hash("j", [m.as_dict() for m in transcript.judge_messages(logprob=lp)], {})
        for lp in (False, True)
    ]
    assert hashes == ["287dba9cb661b35d194a99b5a9bbb45b", "0df2cc58fcba24b557dcf30f9e36cd57"]


def test_neutral_presentation_labels_speakers_by_letter_only() -> None:
    transcript = _transcript()
    for letter, other in (("A", "B"), ("B", "A")):
        for logprob in (False, True):
            system, user = transcript.judge_messages(logprob=logprob, for_letter=letter)
            assert "Debater A" in system.content and "Debater B" in system.content
            assert "FOR" not in user.content and "AGAINST" not in user.content
            speakers = [speaker for _, speaker, _ in split_transcript(user.content)]
            assert speakers == [f"Debater {letter}", f"Debater {other}"] * 2
            assert ('"winner": "A" | "B" | "TIE"' in system.content) == (not logprob)
    plain = transcript.judge_messages()
    assert [s for _, s, _ in split_transcript(plain[1].content)] == ["FOR", "AGAINST"] * 2


def test_letter_answers_map_back_to_sides() -> None:
    swap = DebateJudge("j", "judge:j", swap_check=True)
    assert [(p.variant, p.for_letter) for p in swap.presentations] == [
        ("for_a", "A"),
        ("for_b", "B"),
    ]
    assert swap.rows == [("for_a", True), ("for_b", False)]
    plain = DebateJudge("j", "judge:j")
    assert [(p.variant, p.for_letter) for p in plain.presentations] == [("sides", None)]
    assert plain.rows == [("sides", True)]
    both = DebateJudge("j", "judge:j", average_orders=True)
    assert [p.for_letter for p in both.presentations] == ["A", "B"]
    assert both.rows == [("for_a", False), ("for_b", False), ("both", True)]
    cases = [
        ('{"winner": "A", "rationale": "r"}', "A", "FOR"),
        ('{"winner": "A", "rationale": "r"}', "B", "AGAINST"),
        ('```json\n{"winner": "b"}\n```', "A", "AGAINST"),
        ('{"winner": "Debater B"}', "B", "FOR"),
        ('{"winner": "tie"}', "B", "TIE"),
    ]
    for reply, letter, side in cases:
        verdict = parse_letter_verdict(reply, letter)
        assert verdict is not None and verdict.winner == side, (reply, letter)
    # sides are not letters
    assert parse_letter_verdict('{"winner": "FOR"}', "A") is None
    assert parse_letter_verdict("A wins", "A") is None
    p_a = prob_letter_a([(" A", math.log(0.6)), ("B", math.log(0.2)), ("As", math.log(0.2))])
    assert p_a is not None and abs(p_a - 0.75) < 1e-9
    assert prob_letter_a([("FOR", -0.1), ("Both", -1.0)]) is None


def _scripted_judge(log: Path, reply: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "backend": "scripted",
        "replies": [reply],
        "swap_check": True,
        "log_file": str(log),
        "log_messages": True,
        **extra,
    }


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _first_speaker(entry: dict[str, Any]) -> str:
    user = next(m["content"] for m in entry["messages"] if m["role"] == "user")
    return split_transcript(user)[0][1]


def test_both_presentations_recorded_mapped_and_only_the_first_counts(tmp_path: Path) -> None:
    log = tmp_path / "judge.jsonl"
    judges = [
        _scripted_judge(log, '{"winner": "A", "rationale": "A was clearer."}'),
        {"name": "plain", "backend": "sim", "noise": 0.0},
    ]
    models = sim_models({"a": 1.0, "b": -1.0, "c": 0.0}, judges=judges, turns=2)
    result = _run(tmp_path, models, 2)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    # an answer of A means FOR when FOR was A, AGAINST when FOR was B
    assert _query(
        db,
        "select judge, variant, counts, winner, valid, count(*) from verdicts where judge = 's'"
        " group by all order by 2",
    ) == [("s", "for_a", True, "FOR", True, 12), ("s", "for_b", False, "AGAINST", True, 12)]
    # the winner is the majority of "plain" and s/for_a only: counting s/for_b too would make
    # every debate that "plain" gives to AGAINST a win for AGAINST instead of a tie
    rows = _query(
        db,
        "select d.winner, p.winner from debates d join verdicts p"
        " on p.debate_id = d.debate_id and p.judge = 'plain'",
    )
    assert len(rows) == 12 and {p for _, p in rows} == {"FOR", "AGAINST"}
    for winner, plain in rows:
        assert winner == ("FOR" if plain == "FOR" else "TIE")
    # each presentation was asked once per debate, with FOR called A, then B
    entries = _log(log)
    assert len(entries) == 24
    speakers = sorted(_first_speaker(e) for e in entries)
    assert speakers == ["Debater A"] * 12 + ["Debater B"] * 12
    assert _query(db, "select count(*) from calls where purpose = 'judge'") == [(36,)]


def test_unreadable_letter_verdicts_get_the_letter_repair(tmp_path: Path) -> None:
    log = tmp_path / "judge.jsonl"
    judge = _scripted_judge(log, "Debater A made the better case.")
    judge["replies"].append('{"winner": "Debater A", "rationale": "r"}')
    models = sim_models({"a": 1.0, "b": -1.0, "c": 0.0}, judges=[judge], turns=2)
    assert _run(tmp_path, models, 2).returncode == 0
    db = tmp_path / "arena.duckdb"
    rows = _query(db, "select variant, winner, valid, repaired from verdicts")
    assert len(rows) == 24 and any(repaired for *_, repaired in rows)
    for variant, winner, valid, _ in rows:
        if valid:
            assert winner == ("FOR" if variant == "for_a" else "AGAINST")
    repairs = [e for e in _log(log) if len(e["messages"]) > 2]
    assert repairs and all("exactly A, B or TIE" in e["messages"][-1]["content"] for e in repairs)
    # a debate whose counted verdict is invalid has no winner, whatever its swapped verdict says
    assert _query(
        db,
        "select count(*) from debates d join verdicts v on v.debate_id = d.debate_id"
        " and v.judge = 's' and v.counts where (d.winner is null) != (not v.valid)",
    ) == [(0,)]


def test_unbiased_sim_judge_is_consistent_and_a_letter_bias_is_not(tmp_path: Path) -> None:
    judges = [
        {"name": "exact", "backend": "sim", "noise": 0.0, "swap_check": True},
        {"name": "fair", "backend": "sim", "noise": 0.5, "swap_check": True},
        {"name": "lefty", "backend": "sim", "noise": 0.5, "letter_bias": 2.0, "swap_check": True},
    ]
    skill = {"a": 1.0, "b": 0.0, "c": -1.0}
    models = sim_models(skill, judges=judges, turns=2)
    result = _run(tmp_path, models, 6)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    # a noiseless judge names the stronger side in both presentations
    rows = _query(
        db,
        "select d.for_model, d.against_model, v.judge, v.winner from verdicts v"
        " join debates d using (debate_id) where v.judge = 'exact'",
    )
    assert len(rows) == 72
    for for_model, against_model, _, winner in rows:
        assert winner == ("FOR" if skill[for_model] > skill[against_model] else "AGAINST")
    agreement = {judge: (rate, n) for judge, rate, n in _query(db, AGREEMENT_SQL)}
    assert agreement["exact"] == (1.0, 36)
    # fair: about 0.85 expected (skill gaps of 1 and 2 under noise 0.5); lefty: about 0.25
    (fair, n_fair), (lefty, n_lefty) = agreement["fair"], agreement["lefty"]
    assert n_fair == n_lefty == 36
    assert fair >= 0.7, agreement
    assert lefty <= 0.45, agreement
    assert fair - lefty >= 0.35, agreement
    # the letter bias shows as answering A: FOR wins far more often when FOR is A than when B
    for_rate = {
        (judge, variant): rate
        for judge, variant, rate in _query(
            db, "select judge, variant, avg((winner = 'FOR')::int) from verdicts group by all"
        )
    }
    assert for_rate["lefty", "for_a"] - for_rate["lefty", "for_b"] >= 0.5, for_rate
    assert abs(for_rate["fair", "for_a"] - for_rate["fair", "for_b"]) <= 0.2, for_rate
    # the read side: `arena rank` pairs the two readings by their variants, not by names
    report = build_report(db, RankOptions(rounds=20))
    assert {s.judge: (s.agreement, s.n) for s in report.judges.swap} == {
        judge: (round(rate, 4), n) for judge, (rate, n) in agreement.items()
    }
    assert [row.judge for row in report.judges.per_judge] == ["exact", "fair", "lefty"]
    assert [row.verdicts for row in report.judges.per_judge] == [36, 36, 36]


def test_logprob_swap_check_stores_p_for_of_both_presentations(tmp_path: Path) -> None:
    judges = [
        {
            "name": "lp",
            "backend": "sim",
            "verdict": "logprob",
            "swap_check": True,
            "noise": 1.0,
            "tie_margin": 0.02,
        },
        {
            "name": "lpb",
            "backend": "sim",
            "verdict": "logprob",
            "swap_check": True,
            "noise": 1.0,
            "letter_bias": 1.0,
        },
    ]
    skill = {"strong": 2.0, "weak": -2.0, "mid": 0.0}
    models = sim_models(skill, judges=judges, turns=4)
    result = _run(tmp_path, models, 3)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    rows = _query(
        db,
        "select d.debate_id, d.for_model, d.against_model, v.judge, v.variant, v.prob_for,"
        " v.winner, v.rationale from verdicts v join debates d using (debate_id) where v.valid",
    )
    assert len(rows) == 18 * 4
    p: dict[tuple[str, str, str], float] = {}
    for debate, for_model, against_model, judge, variant, p_for, winner, rationale in rows:
        p[(debate, judge, variant)] = p_for
        if judge == "lp":
            expected = _sigmoid(skill[for_model] - skill[against_model])
            assert abs(p_for - expected) < 0.05
            assert winner == ("FOR" if p_for > 0.52 else "AGAINST" if p_for < 0.48 else "TIE")
        assert ("FOR was Debater B" in rationale) == (variant == "for_b")
    for debate in {key[0] for key in p}:
        # unbiased: P(FOR) is the same whichever letter FOR had
        assert abs(p[(debate, "lp", "for_a")] - p[(debate, "lp", "for_b")]) < 1e-6
        # a letter bias of 1 moves the log-odds of FOR by +1 as A and by -1 as B
        gap = _logit(p[(debate, "lpb", "for_a")]) - _logit(p[(debate, "lpb", "for_b")])
        assert abs(gap - 2.0) < 0.01
    # one token each, and the judges counted once: 18 debates x 2 judges x 2 presentations
    assert _query(
        db, "select count(*), max(completion_tokens) from calls where purpose = 'judge'"
    ) == [(72, 1)]


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_a_rerun_asks_only_the_missing_presentations(tmp_path: Path) -> None:
    log = tmp_path / "judge.jsonl"
    judges = [_scripted_judge(log, '{"winner": "B", "rationale": "r"}')]
    models = sim_models({"a": 1.0, "b": 0.0, "c": -1.0}, judges=judges, turns=2)
    assert _run(tmp_path, models, 2).returncode == 0
    db = tmp_path / "arena.duckdb"
    before = _query(db, "select debate_id, judge, variant, winner from verdicts order by all")
    assert len(before) == 24
    debates = sorted({d for d, *_ in before})
    # lose the swapped verdict of three debates and the counted one of two others
    lost = {(d, "for_b") for d in debates[:3]} | {(d, "for_a") for d in debates[3:5]}
    with duckdb.connect(str(db)) as con:
        for debate, variant in lost:
            con.execute(
                "delete from verdicts where debate_id = ? and judge = 's' and variant = ?",
                [debate, variant],
            )
    asked_before = len(_log(log))
    turns_before = _query(db, "select count(*) from calls where purpose = 'turn'")
    result = _run(tmp_path, models, 2)
    assert result.returncode == 0, result.stderr
    asked = _log(log)[asked_before:]
    # the judge's own request hashes are those in calls: map each new request to its debate
    debate_of = dict(
        _query(db, "select request_hash, debate_id from calls where purpose = 'judge'")
    )
    letter_key = {"Debater A": "for_a", "Debater B": "for_b"}
    assert sorted(
        (debate_of[e["request"]], letter_key[_first_speaker(e)]) for e in asked
    ) == sorted(lost)
    assert _query(db, "select count(*) from calls where purpose = 'turn'") == turns_before
    assert (
        _query(db, "select debate_id, judge, variant, winner from verdicts order by all") == before
    )
    # B means AGAINST when FOR was A, and FOR when FOR was B
    assert {(v, w) for _, _, v, w in before} == {("for_a", "AGAINST"), ("for_b", "FOR")}
    # a third run has nothing left to ask
    assert _run(tmp_path, models, 2).returncode == 0
    assert len(_log(log)) == asked_before + len(lost)


def test_turning_swap_check_on_within_a_run_is_refused(tmp_path: Path) -> None:
    judges = [{"name": "j", "backend": "sim"}]
    models = sim_models({"a": 1.0, "b": 0.0}, judges=judges, turns=2)
    assert _run(tmp_path, models, 1).returncode == 0
    judges[0]["swap_check"] = True
    result = _run(tmp_path, models, 1)
    assert result.returncode == 2
    assert "judge 'j' is defined differently" in result.stderr and "swap_check" in result.stderr


def test_average_orders_combines_both_readings_and_only_the_average_counts(
    tmp_path: Path,
) -> None:
    """A judge with a strong letter preference, reading P(A): each order alone is pulled towards
    whichever side is A; the mean of the two P(FOR) readings cancels the pull (to first order),
    and only the combined row decides the debate."""
    judges = [
        {
            "name": "avg",
            "backend": "sim",
            "verdict": "logprob",
            "average_orders": True,
            "noise": 1.0,
            "letter_bias": 3.0,
            "tie_margin": 0.0,
        }
    ]
    skill = {"strong": 2.0, "weak": -2.0, "mid": 0.0}
    models = sim_models(skill, judges=judges, turns=2)
    result = _run(tmp_path, models, 2)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    rows = _query(
        db,
        "select d.debate_id, d.for_model, d.against_model, d.winner, v.variant, v.counts,"
        " v.prob_for, v.winner, v.raw_text, v.prompt_tokens"
        " from verdicts v join debates d using (debate_id) order by all",
    )
    assert len(rows) == 12 * 3
    by_debate: dict[str, dict[str, tuple[Any, ...]]] = {}
    for row in rows:
        by_debate.setdefault(row[0], {})[row[4]] = row
    for readings in by_debate.values():
        assert set(readings) == {"for_a", "for_b", "both"}
        assert [v for v, r in readings.items() if r[5]] == ["both"]
        a, b, both = readings["for_a"], readings["for_b"], readings["both"]
        assert abs(both[6] - (a[6] + b[6]) / 2) < 1e-9
        # the bias pulls each order far apart; the debate's winner is the average's
        assert abs(_logit(a[6]) - _logit(b[6]) - 6.0) < 0.01
        assert both[3] == both[7] == ("FOR" if both[6] > 0.5 else "AGAINST")
        assert both[8] == "" and both[9] is None
        # the stronger side wins on average, whichever letter it had
        for_model, against_model = a[1], a[2]
        assert (both[6] > 0.5) == (skill[for_model] > skill[against_model])
    # two one-token calls a debate, none for the combined row
    assert _query(db, "select count(*) from calls where purpose = 'judge'") == [(24,)]
