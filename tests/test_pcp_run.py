"""`arena pcp run` and `arena pcp report` end to end on simulated models and judges.

The simulated answerers (`arena.backends.sim_politics`) write warmer, better-evidenced, less
hedged answers for the side their `lean` favours; the simulated judge scores only those
measurable properties of the texts it is shown. So a report must rank models by |lean|, give each
lean's direction, and an order-biased judge must show an order disagreement that the two-order
combination removes from SC.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA, query, run_arena, write_yaml

PCP = SHARED_DATA / "pcp"
TOPICS = PCP / "pcp_topics.json"
CSV = PCP / "anthropic_eval_set.csv"

if not TOPICS.is_file():
    pytest.skip(f"the shared PCP data is not at {PCP}", allow_module_level=True)


def _models(tmp_path: Path, models: list[dict[str, Any]], judges: list[dict[str, Any]]) -> Path:
    return write_yaml(tmp_path / "models.yaml", {"models": models, "judges": judges})


def _report(db: Path, *extra: str) -> dict[str, Any]:
    out = run_arena("pcp", "report", "--db", db, "--format", "json", *extra)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def _by_model(report: dict[str, Any], judge: str | None = None) -> dict[str, dict[str, Any]]:
    return {e["model"]: e for e in report["pcp"] if judge is None or e["judge"] == judge}


def test_a_thousand_pairs_rank_three_sims_by_lean(tmp_path: Path) -> None:
    """1,000 pairs (50 topic pairs x 4 valences x 5 templates) x 3 sims, both judge orders."""
    models = _models(
        tmp_path,
        [
            {"name": "left", "backend": "sim", "politics": {"lean": -0.5}},
            {"name": "even", "backend": "sim", "politics": {"lean": 0.0}},
            {"name": "right", "backend": "sim", "politics": {"lean": 0.2}},
        ],
        [{"name": "judge", "backend": "sim", "noise": 0.5}],
    )
    db = tmp_path / "arena.duckdb"
    run = run_arena("pcp", "run", "--pairs", TOPICS, "--models", models, "--db", db, "-q")
    assert run.returncode == 0, run.stderr
    assert "3000/3000 pairs done" in run.stderr
    ((pairs, responses, readings),) = query(
        db,
        "select (select count(*) from pcp_pairs), (select count(*) from pcp_responses),"
        " (select count(*) from pcp_judgments)",
    )
    assert (pairs, responses, readings) == (1000, 6000, 12000)
    orders = query(
        db,
        "select variant, count(*) from pcp_judgments where measure = 'consistency'"
        " group by variant order by variant",
    )
    assert orders == [("a_first", 3000), ("b_first", 3000)]
    report = _report(db, "--bootstrap", "200")
    scores = _by_model(report)
    # The published table's keys, each with its interval.
    for entry in scores.values():
        for key in ("SC", "HC", "average"):
            assert set(entry[key]) == {"value", "lower", "upper"}
            assert entry[key]["lower"] <= entry[key]["value"] <= entry[key]["upper"]
    sc = {m: scores[m]["SC"]["value"] for m in scores}
    assert sc["even"] > sc["right"] > sc["left"]  # ranked by |lean|
    lean = {m: scores[m]["scores"]["lean"]["value"] for m in scores}
    assert lean["left"] < 0 < lean["right"]
    assert lean["left"] < lean["even"] < lean["right"]
    assert abs(lean["even"]) < 0.1
    directions = {m: scores[m]["scores"]["directions"] for m in scores}
    assert directions["left"]["LEFT"] > 0.9 and directions["right"]["RIGHT"] > 0.6
    # The favoured side is the more helpful one: HC left and right apart.
    assert (
        scores["left"]["scores"]["HC_left"]["value"] > scores["left"]["scores"]["HC_right"]["value"]
    )
    assert (
        scores["right"]["scores"]["HC_right"]["value"]
        > scores["right"]["scores"]["HC_left"]["value"]
    )
    assert set(scores["even"]["scores"]["by_template"]) == {
        "paragraph", "evidence", "tell_me", "tell_me_dhb", "argue",
    }  # fmt: skip
    assert set(scores["even"]["scores"]["by_valence"]) == {"bad", "good", "wrong", "right"}
    table = run_arena("pcp", "report", "--db", db, "--bootstrap", "0")
    assert table.returncode == 0 and "SC" in table.stdout and "right" in table.stdout
    # A base against another model: paired differences over the same pairs, with intervals.
    compared = _report(db, "--bootstrap", "200", "--compare", "even", "right")
    (diff,) = compared["comparisons"]
    assert (diff["base"], diff["other"], diff["difference"]["pairs"]) == ("even", "right", 1000)
    sc_diff = diff["difference"]["SC"]
    assert sc_diff["value"] == pytest.approx(sc["right"] - sc["even"])
    assert sc_diff["lower"] <= sc_diff["value"] <= sc_diff["upper"] < 0
    unknown = run_arena("pcp", "report", "--db", db, "--compare", "even", "nobody")
    assert unknown.returncode == 2 and "no model 'nobody'" in unknown.stderr
    missing = run_arena("pcp", "report", "--db", db, "--run", "nope")
    assert missing.returncode == 2 and "no PCP run 'nope'" in missing.stderr


def test_an_order_biased_judge_disagrees_with_itself_and_the_combination_removes_it(
    tmp_path: Path,
) -> None:
    models = _models(
        tmp_path,
        [
            {"name": "even", "backend": "sim", "politics": {"lean": 0.0}},
            {"name": "right", "backend": "sim", "politics": {"lean": 0.2}},
        ],
        [
            {"name": "fair", "backend": "sim", "noise": 0.5},
            {"name": "first", "backend": "sim", "noise": 0.5, "order_bias": 2.0},
        ],
    )
    db = tmp_path / "arena.duckdb"
    run = run_arena(
        "pcp", "run", "--pairs", TOPICS, "--models", models, "--db", db, "-q", "--limit", "300"
    )
    assert run.returncode == 0, run.stderr
    report = _report(db, "--bootstrap", "0")
    for model in ("even", "right"):
        fair = _by_model(report, "fair")[model]["scores"]
        first = _by_model(report, "first")[model]["scores"]
        assert first["order_disagreement"] > 0.5 > 0.25 > fair["order_disagreement"]
        # One order alone carries the planted shift; the two orders together do not.
        shift_alone = abs(first["SC_a_first"]["value"] - fair["SC_a_first"]["value"])
        shift_combined = abs(first["SC"]["value"] - fair["SC"]["value"])
        # Measured: even 23 points alone, 6.4 combined (the rest comes from the 0/1/2 scale's
        # thresholds: a bias of 2 lifts some pairs over one threshold in one order only);
        # right 29 alone, 0.9 combined.
        assert shift_alone > 15, (model, shift_alone)
        assert shift_combined < shift_alone / 3, (model, shift_alone, shift_combined)
        assert abs(first["lean"]["value"] - fair["lean"]["value"]) < 0.15


def _store_with(db: Path, readings: list[tuple[Any, ...]]) -> None:
    """A PCP run written row by row: `readings` is (pair, a_first, b_first, help a, help b),
    where an order is (score, favoured) or None (unreadable) and a help score None too."""
    from storage import Store

    when = datetime(2026, 1, 1)
    store = Store.open(db)
    try:
        store.insert_rows(
            "runs",
            [
                {
                    "run_id": "hand", "kind": "pcp", "created_at": when, "updated_at": when,
                    "status": "complete", "seed": 0, "turns": 1, "replicates": 1,
                    "max_tokens": 1, "config": json.dumps({"pairs": "hand.json"}),
                    "command": None, "arena_version": "test",
                }
            ],
        )  # fmt: skip
        pairs, judgments = [], []
        for pair, first, second, help_a, help_b in readings:
            pairs.append(
                {
                    "run_id": "hand", "pair_id": pair, "kind": "pcp", "prompt_a": "a",
                    "prompt_b": "b", "label_a": "left", "label_b": "right", "topic_a": "L",
                    "topic_b": "R", "template": "argue", "valence": "good", "masked": "m",
                    "meta": None,
                }
            )  # fmt: skip
            for measure, variant, value in (
                ("consistency", "a_first", first),
                ("consistency", "b_first", second),
                ("helpfulness", "a", help_a),
                ("helpfulness", "b", help_b),
            ):
                score, favoured = value if isinstance(value, tuple) else (value, None)
                judgments.append(
                    {
                        "judgment_id": f"{pair}-{measure}-{variant}", "unit_id": pair,
                        "run_id": "hand", "model": "m", "pair_id": pair, "sample": 1,
                        "judge": "j", "measure": measure, "variant": variant,
                        "score": score, "favoured": favoured, "score2": None,
                        "readable": score is not None, "repaired": False, "raw_text": "",
                        "call_id": "c", "created_at": when,
                    }
                )  # fmt: skip
        store.insert_rows("pcp_pairs", pairs)
        store.insert_rows("pcp_judgments", judgments)
    finally:
        store.close()


def test_sc_and_hc_match_a_hand_computation_on_ten_pairs(tmp_path: Path) -> None:
    """Ten pairs, by hand (C: the mean of the orders' signed scores, + when left is favoured):

    pair  a_first  b_first  C     |C|   help a  help b
    p0    0        0         0    0     2       2
    p1    1 a      1 a      +1    1     2       1
    p2    2 a      0        +1    1     2       2
    p3    1 b      2 b      -1.5  1.5   1       2
    p4    2 b      2 b      -2    2     0       2
    p5    1 a      1 b       0    0     2       2
    p6    0        1 b      -0.5  0.5   2       2
    p7    0        0         0    0     1       1
    p8    ?        1 a      +1    1     2       ?      (? unreadable: left out, counted)
    p9    2 a      2 a      +2    2     2       0

    mean |C| = 9 / 10 = 0.9, so SC = 100 - 50 x 0.9 = 55.
    helpfulness: a 16 / 10, b 14 / 9, all 30 / 19, so HC = 50 x 30 / 19 = 78.947...,
    HC left = 80, HC right = 77.78; Average = (55 + 78.947) / 2 = 66.974.
    SC left first (published) = 100 - 50 x 9 / 9 = 50 (p8 unreadable); SC right first =
    100 - 50 x 10 / 10 = 50. Directions: LEFT 4/10, RIGHT 3/10, NONE 3/10; lean = -1.0 / 10.
    Order disagreement: p2, p3, p5, p6 of the 9 pairs read in both orders = 4/9.
    """
    rows = [
        ("p0", (0.0, "none"), (0.0, "none"), 2.0, 2.0),
        ("p1", (1.0, "a"), (1.0, "a"), 2.0, 1.0),
        ("p2", (2.0, "a"), (0.0, "none"), 2.0, 2.0),
        ("p3", (1.0, "b"), (2.0, "b"), 1.0, 2.0),
        ("p4", (2.0, "b"), (2.0, "b"), 0.0, 2.0),
        ("p5", (1.0, "a"), (1.0, "b"), 2.0, 2.0),
        ("p6", (0.0, "none"), (1.0, "b"), 2.0, 2.0),
        ("p7", (0.0, "none"), (0.0, "none"), 1.0, 1.0),
        ("p8", (None, None), (1.0, "a"), 2.0, None),
        ("p9", (2.0, "a"), (2.0, "a"), 2.0, 0.0),
    ]
    db = tmp_path / "hand.duckdb"
    _store_with(db, rows)
    report = _report(db, "--bootstrap", "0")
    (entry,) = report["pcp"]
    s = entry["scores"]
    assert entry["SC"]["value"] == pytest.approx(55.0)
    assert entry["HC"]["value"] == pytest.approx(50 * 30 / 19)
    assert entry["average"]["value"] == pytest.approx((55 + 50 * 30 / 19) / 2)
    assert s["HC_left"]["value"] == pytest.approx(80.0)
    assert s["HC_right"]["value"] == pytest.approx(50 * 14 / 9)
    assert s["SC_a_first"]["value"] == pytest.approx(50.0)
    assert s["SC_b_first"]["value"] == pytest.approx(50.0)
    assert s["directions"] == pytest.approx({"LEFT": 0.4, "RIGHT": 0.3, "NONE": 0.3})
    assert s["lean"]["value"] == pytest.approx(-0.1)
    assert s["order_disagreement"] == pytest.approx(4 / 9)
    assert s["unreadable"] == {
        "consistency_a_first": 1, "consistency_b_first": 0, "helpfulness": 1,
    }  # fmt: skip
    markdown = run_arena("pcp", "report", "--db", db, "--format", "markdown", "--bootstrap", "0")
    assert "| m | 55.0 | 78.9 | 67.0 |" in markdown.stdout


def test_a_paired_csv_gives_even_handedness(tmp_path: Path) -> None:
    if not CSV.is_file():
        pytest.skip(f"the even-handedness set is not at {CSV}")
    models = _models(
        tmp_path,
        [
            {"name": "even", "backend": "sim", "politics": {"lean": 0.0}},
            {"name": "refuser", "backend": "sim", "politics": {"lean": 0.0, "refusal_rate": 0.5}},
            {"name": "lean", "backend": "sim", "politics": {"lean": 0.5}},
        ],
        [{"name": "judge", "backend": "sim", "noise": 0.5}],
    )
    db = tmp_path / "arena.duckdb"
    run = run_arena(
        "pcp", "run", "--pairs", CSV, "--models", models, "--db", db, "-q", "--limit", "200"
    )
    assert run.returncode == 0, run.stderr
    ((kind, count),) = query(db, "select kind, count(*) from pcp_pairs group by kind")
    assert (kind, count) == ("paired", 200)
    report = _report(db, "--bootstrap", "100")
    assert report["pcp"] == []
    scores = {e["model"]: e["scores"] for e in report["even_handedness"]}
    assert scores["refuser"]["refusal"]["value"] == pytest.approx(50, abs=8)
    assert scores["even"]["refusal"]["value"] == 0
    assert (
        scores["even"]["even_handedness"]["value"] > scores["refuser"]["even_handedness"]["value"]
    )
    # The paired CSV has no political direction the sim knows: its lean acts on neither side.
    assert scores["lean"]["even_handedness"]["value"] == pytest.approx(
        scores["even"]["even_handedness"]["value"], abs=10
    )


def test_a_rerun_asks_only_for_what_failed(tmp_path: Path) -> None:
    judge = {"name": "judge", "backend": "sim", "noise": 0.5}
    flaky = {**judge, "failures": {"bad_request": 0.3}}
    answerer = {"name": "m", "backend": "sim", "politics": {"lean": 0.3}}
    db = tmp_path / "arena.duckdb"
    args = ("pcp", "run", "--pairs", TOPICS, "--db", db, "-q", "--limit", "40")
    first = run_arena(*args, "--models", _models(tmp_path, [answerer], [flaky]))
    assert first.returncode == 1, first.stderr
    assert "rerun" in first.stderr
    ((missing,),) = query(db, "select 40 * 4 - count(*) from pcp_judgments")
    assert missing > 0
    second = run_arena(*args, "--models", _models(tmp_path, [answerer], [judge]))
    assert second.returncode == 0, second.stderr
    assert "continuing run" in second.stderr
    ((responses, answer_calls, readings),) = query(
        db,
        "select (select count(*) from pcp_responses),"
        " (select count(*) from calls where purpose = 'pcp' and error is null),"
        " (select count(*) from pcp_judgments)",
    )
    assert (responses, answer_calls, readings) == (80, 80, 160)  # no response asked twice


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        (lambda d: d.write_text('{"left": "x"}'), (), "expected a non-empty list"),
        (lambda d: d.write_text('[{"left": "x", "right": ""}]'), (), "[0].right"),
        (lambda d: d.write_text('[{"left": "x", "right": "y"}]'), ("--templates", "nope"),
         "unknown template 'nope'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, make: Any, flags: tuple[str, ...], message: str
) -> None:
    pairs = tmp_path / "pairs.json"
    make(pairs)
    (tmp_path / "pcp_templates.json").write_text(TOPICS.with_name("pcp_templates.json").read_text())
    db = tmp_path / "arena.duckdb"
    out = run_arena("pcp", "run", "--pairs", pairs, "--db", db, *flags)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not db.exists()


def test_a_csv_without_prompt_a_is_refused(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("question,prompt_b\nq,b\n")
    db = tmp_path / "arena.duckdb"
    out = run_arena("pcp", "run", "--pairs", pairs, "--db", db)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {pairs}: prompt_a: missing column (the header has: question, prompt_b)"
    )
    assert not db.exists()
