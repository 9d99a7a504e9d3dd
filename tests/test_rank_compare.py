"""`arena rank --compare A B`: B - A with a paired bootstrap interval, and the head-to-head record.

One tournament of simulated debaters of known skill (a strong and a weak one, and two of equal
skill) serves every test: the strong minus the weak must be positive with an interval above 0,
the two equals an interval around 0; the record must match a count in SQL; the interval must be
that of the leaderboard's own bootstrap rounds, differenced within each round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eval.compare import head_to_head_record, paired_difference
from eval.ratings import A_WINS, B_WINS, TIE, aggregate, bootstrap
from tests.conftest import query, run_arena, sim_models, tournament

SKILLS = {"strong": 1.5, "equal-1": 0.0, "equal-2": 0.0, "weak": -1.5}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("compare")
    # 4 x 3 ordered pairs x 10 topics = 120 debates, 10 per ordered pair
    result = tournament(tmp, sim_models(SKILLS, turns=2, seed=3), 10, "-q")
    assert result.returncode == 0, result.stderr
    return tmp / "arena.duckdb"


def compare(db: Path, first: str, second: str, *extra: str) -> dict[str, Any]:
    result = run_arena("rank", "--db", db, "--compare", first, second, "-f", "json", *extra)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_strong_minus_weak_is_positive_and_excludes_zero(db: Path) -> None:
    c = compare(db, "weak", "strong")
    assert c["first"] == "weak" and c["second"] == "strong"
    assert c["difference"] > 0
    assert 0 < c["lower"] <= c["difference"] <= c["upper"]
    assert c["b_above"] == 1.0
    # the other way round: the same numbers, negated
    r = compare(db, "strong", "weak")
    assert r["difference"] == pytest.approx(-c["difference"], abs=0.11)
    assert r["upper"] == pytest.approx(-c["lower"], abs=0.11)
    assert r["b_above"] == 0.0


def test_two_equal_models_have_an_interval_around_zero(db: Path) -> None:
    c = compare(db, "equal-1", "equal-2")
    assert c["lower"] < 0 < c["upper"]
    assert 0 < c["b_above"] < 1


def test_record_matches_sql(db: Path) -> None:
    c = compare(db, "equal-1", "strong")
    rows = query(
        db,
        "select for_model, winner, count(*) from debates where status = 'done'"
        " and winner is not null and ((for_model = 'equal-1' and against_model = 'strong')"
        " or (for_model = 'strong' and against_model = 'equal-1')) group by all",
    )
    n = {(f, w): k for f, w, k in rows}
    h2h = c["head_to_head"]
    assert h2h["first_for"] == {
        "battles": sum(k for (f, _), k in n.items() if f == "equal-1"),
        "first_wins": n.get(("equal-1", "FOR"), 0),
        "second_wins": n.get(("equal-1", "AGAINST"), 0),
        "ties": n.get(("equal-1", "TIE"), 0),
    }
    assert h2h["second_for"] == {
        "battles": sum(k for (f, _), k in n.items() if f == "strong"),
        "first_wins": n.get(("strong", "AGAINST"), 0),
        "second_wins": n.get(("strong", "FOR"), 0),
        "ties": n.get(("strong", "TIE"), 0),
    }
    assert h2h["total"]["battles"] == 20  # 10 topics, each side once
    assert h2h["total"]["second_wins"] > h2h["total"]["first_wins"]


def test_same_rounds_as_the_leaderboard(db: Path) -> None:
    """The rows are the leaderboard's, and the interval is that of the leaderboard's bootstrap
    rounds (refitted here from a SQL read with the same seed) differenced within each round."""
    c = compare(db, "weak", "equal-2", "--bootstrap", "200", "--seed", "5")
    board = run_arena("rank", "--db", db, "-f", "json", "--bootstrap", "200", "--seed", "5")
    rows = {m["model"]: m for m in json.loads(board.stdout)["models"]}
    assert c["ratings"] == [rows["weak"], rows["equal-2"]]
    debates = query(
        db,
        "select for_model, against_model, winner from debates where status = 'done'"
        " and winner is not null order by updated_at, debate_id",
    )
    names = sorted(SKILLS)
    outcome = {"FOR": A_WINS, "AGAINST": B_WINS, "TIE": TIE}
    a = [names.index(f) for f, _, _ in debates]
    b = [names.index(g) for _, g, _ in debates]
    o = [outcome[w] for _, _, w in debates]
    bs = bootstrap(aggregate(a, b, o, len(names)), len(names), 200, rng=np.random.default_rng(5))
    i, j = names.index("weak"), names.index("equal-2")
    diff = bs.samples[:, j] - bs.samples[:, i]
    assert c["lower"] == pytest.approx(np.percentile(diff, 2.5), abs=0.051)
    assert c["upper"] == pytest.approx(np.percentile(diff, 97.5), abs=0.051)
    # paired: narrower than the gap between the two separate intervals' far ends
    assert c["upper"] - c["lower"] < rows["equal-2"]["upper"] - rows["weak"]["lower"]
    record = head_to_head_record(a, b, o, i, j)
    assert c["head_to_head"]["total"]["battles"] == record.total.battles


def test_table_markdown_and_out(db: Path, tmp_path: Path) -> None:
    table = run_arena("rank", "--db", db, "--compare", "weak", "strong")
    assert table.returncode == 0, table.stderr
    assert "strong - weak: +" in table.stdout and "Head to head" in table.stdout
    out = tmp_path / "cmp.md"
    md = run_arena("rank", "--db", db, "--compare", "weak", "strong", "-f", "markdown", "-o", out)
    assert md.returncode == 0, md.stderr
    text = out.read_text()
    assert text.startswith("# strong vs weak\n") and "| weak FOR, strong AGAINST |" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--compare", "weak", "nobody"), "no judged debates of 'nobody'"),
        (("--compare", "weak", "weak"), "two different models"),
        (("--compare", "weak", "strong", "-f", "html"), "--compare: choose --format"),
        (("--compare", "weak", "strong", "-o", "x.json"), "choose --format json or markdown to"),
    ],
)
def test_bad_compare(db: Path, args: tuple[str, ...], message: str) -> None:
    result = run_arena("rank", "--db", db, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_paired_difference_by_hand() -> None:
    """Two rounds whose ratings move together: separate intervals overlap, the paired one
    does not."""
    d = paired_difference([[900, 1000], [1100, 1200]], [1000, 1100], 0, 1, level=0.5)
    assert (d.difference, d.lower, d.upper, d.above) == (100.0, 100.0, 100.0, 1.0)
