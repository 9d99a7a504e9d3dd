"""`arena rank`'s report: judge quality, majority cycles, filters, methods and the four outputs.

Hand-built stores give exact expectations (a rock-paper-scissors cycle, a judge whose verdicts
always follow the longer side); simulated tournaments check the methods against known skills and
a planted side bias. The HTML report is rendered by real headless Chromium when it is installed
(.ci/run installs Debian's `chromium`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from eval.judges import MISSING, cohen_kappa, fleiss_kappa, side_bias
from eval.ratings import A_WINS, B_WINS, TIE
from eval.report import RankOptions, RankReport, build_report, html, json_text, markdown
from eval.report.figures import JUDGE_COLOUR, PALETTE, RATING_COLOUR, figures, heat_colour
from eval.report.models import MajorityCycle, ModelRating
from storage import Store
from tests.conftest import run_arena, sim_models, tournament

NOW = dt.datetime(2026, 3, 1, 12, 0, 0)


def build(
    db: Path,
    debates: Sequence[tuple[str, str, str, str | None]],
    verdicts: Mapping[str | tuple[str, str, bool], Sequence[str | None]] | None = None,
    lengths: Sequence[tuple[int, int]] | None = None,
    categories: dict[str, str] | None = None,
) -> Path:
    """A store of finished debates (topic, FOR model, AGAINST model, majority winner), with
    optional per-judge verdicts (None = invalid) and (FOR, AGAINST) characters per debate.

    A verdicts key is a judge shown the sides (variant 'sides', counting), or (judge, variant,
    counts)."""
    with Store.open(db) as store:
        store.insert_rows(
            "runs",
            [
                {
                    "run_id": "r1",
                    "kind": "tournament",
                    "created_at": NOW,
                    "updated_at": NOW,
                    "status": "complete",
                    "seed": 0,
                    "turns": 2,
                    "replicates": 1,
                    "max_tokens": 100,
                    "config": "{}",
                    "command": "arena tournament",
                    "arena_version": "0.1.0",
                }
            ],
        )
        topics = sorted({d[0] for d in debates})
        store.insert_rows(
            "topics",
            [
                {
                    "run_id": "r1",
                    "topic_id": t,
                    "motion": f"Motion {t}.",
                    "category": (categories or {}).get(t),
                }
                for t in topics
            ],
        )
        store.insert_rows(
            "debates",
            [
                {
                    "debate_id": f"d{i}",
                    "run_id": "r1",
                    "topic_id": t,
                    "for_model": f,
                    "against_model": a,
                    "replicate": i,
                    "turns_planned": 2,
                    "status": "done",
                    "winner": w,
                    "created_at": NOW,
                    "updated_at": NOW + dt.timedelta(seconds=i),
                }
                for i, (t, f, a, w) in enumerate(debates)
            ],
        )
        turns = []
        for i, (_, f, a, _) in enumerate(debates):
            n_for, n_against = lengths[i] if lengths else (100, 100)
            for index, side, model, n in ((1, "FOR", f, n_for), (2, "AGAINST", a, n_against)):
                turns.append(
                    {
                        "debate_id": f"d{i}",
                        "turn_index": index,
                        "side": side,
                        "role": "opening" if index == 1 else "closing",
                        "model": model,
                        "text": "x" * n,
                        "raw_text": "x" * n,
                        "call_id": f"c{i}-{index}",
                        "created_at": NOW,
                    }
                )
        store.insert_rows("turns", turns)
        rows = []
        for key, labels in (verdicts or {}).items():
            judge, variant, counts = (key, "sides", True) if isinstance(key, str) else key
            for i, label in enumerate(labels):
                rows.append(
                    {
                        "debate_id": f"d{i}",
                        "judge": judge,
                        "variant": variant,
                        "counts": counts,
                        "winner": label,
                        "valid": label is not None,
                        "repaired": False,
                        "raw_text": str(label),
                        "created_at": NOW,
                    }
                )
        if rows:
            store.insert_rows("verdicts", rows)
    return db


def _value(x: float | None) -> float:
    """A report number the test expects to be defined (the report has null where it is not)."""
    assert x is not None
    return x


# -- judge-quality math against independent formulations ------------------------------------


def test_cohen_kappa_equals_the_confusion_matrix_formula() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(-1, 3, size=200)
        y = np.where(rng.random(200) < 0.6, x, rng.integers(-1, 3, size=200))
        both = (x != MISSING) & (y != MISSING)
        table = np.zeros((3, 3))
        np.add.at(table, (x[both], y[both]), 1)
        table /= table.sum()
        p_o = np.trace(table)
        p_e = float(table.sum(axis=1) @ table.sum(axis=0))
        k, n = cohen_kappa(x, y)
        assert n == int(both.sum())
        assert k == pytest.approx((p_o - p_e) / (1 - p_e), abs=1e-12)


def test_fleiss_kappa_with_two_raters_is_scotts_pi() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=300)
    y = np.where(rng.random(300) < 0.5, x, rng.integers(0, 3, size=300))
    pooled = np.bincount(np.concatenate([x, y]), minlength=3) / 600
    p_o = float(np.mean(x == y))
    p_e = float(pooled @ pooled)
    k, n = fleiss_kappa(np.stack([x, y], axis=1))
    assert n == 300
    assert k == pytest.approx((p_o - p_e) / (1 - p_e), abs=1e-12)
    # rows with a missing label are left out
    z = y.copy()
    z[:10] = MISSING
    assert fleiss_kappa(np.stack([x, z], axis=1))[1] == 290


def test_side_bias_interval_is_exact_binomial() -> None:
    b = side_bias([A_WINS] * 30 + [B_WINS] * 30 + [TIE] * 4 + [MISSING] * 3)
    assert (b.for_wins, b.decisive, b.ties) == (30, 60, 4)
    assert b.lower < 0.5 < b.upper and not b.biased
    assert 0.36 < b.lower < 0.38  # Clopper-Pearson for 30/60: 0.368 to 0.632
    assert side_bias([]).decisive == 0 and math.isnan(side_bias([]).for_rate)


# -- hand-built stores: exact expectations --------------------------------------------------


def test_rock_paper_scissors_cycle_is_listed_with_its_debates(tmp_path: Path) -> None:
    # rock beats scissors, scissors beats paper, paper beats rock: 3 of 4 debates each way
    debates: list[tuple[str, str, str, str | None]] = []
    for winner, loser in (("rock", "scissors"), ("scissors", "paper"), ("paper", "rock")):
        debates += [("t1", winner, loser, "FOR"), ("t1", loser, winner, "AGAINST")]
        debates += [("t1", winner, loser, "FOR"), ("t1", winner, loser, "AGAINST")]
    db = build(tmp_path / "a.duckdb", debates)
    report = build_report(db, RankOptions(rounds=50))
    graph = report.graph
    assert graph.cycles == [MajorityCycle(models=["paper", "rock", "scissors"], debates=[4, 4, 4])]
    edge = {(e.winner, e.loser): e for e in graph.edges}
    assert set(edge) == {("rock", "scissors"), ("scissors", "paper"), ("paper", "rock")}
    assert edge["rock", "scissors"].points == 3.0
    assert "paper > rock > scissors > paper (4, 4, 4 debates)" in markdown(report)
    # the observed matrix says the same: 0.75 for each winner
    m = report.matrices
    i, j = m.models.index("rock"), m.models.index("scissors")
    assert m.observed[i][j] == 0.75 and m.observed[j][i] == 0.25


def test_judge_quality_on_a_hand_built_store(tmp_path: Path) -> None:
    # 8 debates; "long" always picks the side that spoke more, "flip" is its opposite except
    # on two debates, "broken" gives two invalid verdicts.
    lengths = [(900, 100), (100, 900), (800, 200), (300, 700), (600, 400), (100, 500)] * 2
    debates = [("t1" if i < 6 else "t2", "A", "B", None) for i in range(12)]
    long_ = ["FOR" if f > a else "AGAINST" for f, a in lengths]
    flip = ["AGAINST" if w == "FOR" else "FOR" for w in long_]
    flip[0], flip[1] = long_[0], long_[1]
    broken: list[str | None] = list(long_)
    broken[2] = broken[3] = None
    db = build(
        tmp_path / "j.duckdb",
        [(t, f, a, long_[i]) for i, (t, f, a, _) in enumerate(debates)],
        verdicts={"long": long_, "flip": flip, "broken": broken},
        lengths=lengths,
    )
    report = build_report(db, RankOptions(rounds=20))
    q = {j.judge: j for j in report.judges.per_judge}
    assert q["long"].longer_side_won == 1.0 and _value(q["long"].verbosity_r) > 0.8
    assert q["flip"].longer_side_won == pytest.approx(2 / 12, abs=1e-4)
    assert q["broken"].invalid_rate == pytest.approx(2 / 12, abs=1e-4)
    assert q["broken"].valid == 10 and q["long"].for_rate == 0.5
    agreement = report.judges.agreement
    assert agreement.statistic == "fleiss" and agreement.debates == 10
    pair = {(p.a, p.b): p for p in agreement.pairwise}
    assert pair["broken", "long"].kappa == 1.0 and pair["broken", "long"].n == 10
    assert _value(pair["flip", "long"].kappa) < 0


def test_swapped_presentations_give_swap_consistency(tmp_path: Path) -> None:
    debates = [("t1", "A", "B", "FOR"), ("t1", "B", "A", "FOR"), ("t1", "A", "B", "AGAINST")] * 2
    original = ["FOR", "FOR", "AGAINST", "FOR", "FOR", "AGAINST"]
    swapped = ["FOR", "AGAINST", "AGAINST", "FOR", None, "AGAINST"]
    averaged = ["FOR", "TIE", "AGAINST", "FOR", None, "AGAINST"]  # where the two disagree: TIE
    verdicts: dict[str | tuple[str, str, bool], list[str | None]] = {
        ("j", "for_a", True): original,  # swap_check: the first reading counts
        ("j", "for_b", False): swapped,
        ("k", "for_a", False): original,  # average_orders: the combined reading counts
        ("k", "for_b", False): swapped,
        ("k", "both", True): averaged,
        "plain": original,
    }
    db = build(tmp_path / "s.duckdb", debates, verdicts=verdicts)
    report = build_report(db, RankOptions(rounds=20))
    judged = report.judges.per_judge
    assert [row.judge for row in judged] == ["j", "k", "plain"]
    assert list(report.per_judge) == ["j", "k", "plain"]
    # each judge once, by its verdict that counts
    assert [(row.verdicts, row.valid, row.ties) for row in judged] == [
        (6, 6, 0),
        (6, 5, 1),
        (6, 6, 0),
    ]
    assert {(p.a, p.b): p.kappa for p in report.judges.agreement.pairwise}[("j", "plain")] == 1.0
    assert [(s.judge, s.n, s.agreement) for s in report.judges.swap] == [
        ("j", 5, 0.8),
        ("k", 5, 0.8),
    ]
    by_j = build_report(db, RankOptions(rounds=20, judge="j"))
    assert by_j.judge == "j" and by_j.battles == 6
    assert build_report(db, RankOptions(rounds=20, judge="k")).battles == 5


def test_filters_select_exactly_their_debates(tmp_path: Path) -> None:
    debates = [("t1", "A", "B", "FOR")] * 3 + [("t2", "B", "A", "FOR")] * 5
    debates += [("t3", "A", "B", "AGAINST")] * 2
    db = build(tmp_path / "f.duckdb", debates, categories={"t1": "econ", "t3": "econ"})
    assert build_report(db, RankOptions(rounds=20)).battles == 10
    assert build_report(db, RankOptions(rounds=20, topics=("t2",))).battles == 5
    assert build_report(db, RankOptions(rounds=20, categories=("econ",))).battles == 5
    result = run_arena("rank", "--db", db, "--topic", "t1", "--topic", "t3", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["battles"] == 5
    for flag, value in (
        ("--topic", "t9"),
        ("--category", "law"),
        ("--judge", "nobody"),
        ("--anchor", "Z"),
        ("--run", "r9"),
    ):
        bad = run_arena("rank", "--db", db, flag, value)
        assert bad.returncode == 2 and bad.stdout == "", bad
        assert bad.stderr.startswith(f"error: {flag}: no ") and len(bad.stderr.splitlines()) == 1
    bad = run_arena("rank", "--db", db, "--ties", "davidson")
    assert bad.returncode == 2 and "have no ties" in bad.stderr
    bad = run_arena("rank", "--db", db, "--out", tmp_path / "r.md")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --out:")


def test_anchor_and_davidson_ties(tmp_path: Path) -> None:
    debates = [("t1", "A", "B", "FOR"), ("t1", "B", "A", "TIE"), ("t1", "A", "C", "FOR")] * 4
    debates += [("t1", "C", "B", "AGAINST"), ("t1", "B", "C", "TIE")] * 4
    db = build(tmp_path / "d.duckdb", debates)
    anchored = build_report(db, RankOptions(rounds=50, anchor="B"))
    rating = {m.model: _value(m.rating) for m in anchored.models}
    assert rating["B"] == 1000.0 and rating["A"] > 1000.0 > rating["C"]
    davidson = build_report(db, RankOptions(rounds=50, ties="davidson"))
    assert davidson.ties == "davidson" and _value(davidson.tie_param) > 0


# -- simulated tournaments: methods against known skills and a planted side bias ------------

SKILLS = {f"m{i}": 1.5 - 0.45 * i for i in range(8)}


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sim")
    judges = [
        {"name": "fair", "backend": "sim", "noise": 1.0, "swap_check": True},
        {"name": "leaner", "backend": "sim", "noise": 1.0, "side_bias": 1.2},
        {
            "name": "lettered",
            "backend": "sim",
            "noise": 1.0,
            "letter_bias": 3.0,
            "swap_check": True,
        },
    ]
    models = sim_models(SKILLS, judges=judges, turns=2, seed=3)
    result = tournament(tmp, models, 6, "-q")  # 8 x 7 ordered pairs x 6 topics = 336 debates
    assert result.returncode == 0, result.stderr
    return tmp / "arena.duckdb"


def _tau(models: list[ModelRating]) -> float:
    names = [m.model for m in models]
    return float(kendalltau([SKILLS[n] for n in names], [m.rating for m in models]).statistic)


def test_methods_recover_known_skills_and_flag_the_biased_judge(sim_db: Path) -> None:
    bt = build_report(sim_db, RankOptions(rounds=200, judge="fair"))
    assert bt.battles == 336 and _tau(bt.models) >= 0.9
    elo = build_report(sim_db, RankOptions(rounds=100, judge="fair", method="elo"))
    assert elo.method == "elo" and elo.side_advantage is None
    assert _tau(elo.models) >= 0.85
    for m in elo.models:
        assert _value(m.lower) <= _value(m.rating) <= _value(m.upper)
    quality = {j.judge: j for j in bt.judges.per_judge}
    assert quality["leaner"].side_biased and _value(quality["leaner"].for_lower) > 0.5
    assert not quality["fair"].side_biased
    # per-judge tables: the biased judge's own table carries its side advantage
    per = bt.per_judge
    assert set(per) == {"fair", "leaner", "lettered"}
    leaner_side = per["leaner"].side_advantage
    assert leaner_side is not None and _value(leaner_side.lower) > 0
    assert per["fair"].models == bt.models  # --judge fair is fair's own table
    # swap consistency: the judge with a planted letter bias contradicts itself far more often
    swap = {s.judge: s for s in bt.judges.swap}
    assert set(swap) == {"fair", "lettered"} and swap["fair"].n == 336
    assert _value(swap["fair"].agreement) >= _value(swap["lettered"].agreement) + 0.2
    assert _value(swap["fair"].kappa) > _value(swap["lettered"].kappa)


def test_rank_cli_outputs_agree(sim_db: Path, tmp_path: Path) -> None:
    base = ("rank", "--db", sim_db, "--bootstrap", "100", "--seed", "1")
    as_json = run_arena(*base, "-f", "json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["schema_version"] == 2
    # the JSON is the typed report's, and reads back into the types
    built = build_report(sim_db, RankOptions(rounds=100, seed=1))
    assert as_json.stdout == json_text(built) + "\n"
    assert RankReport.model_validate_json(as_json.stdout) == built
    md = run_arena(*base, "-f", "markdown", "--out", tmp_path / "r.md")
    assert md.returncode == 0 and md.stdout.strip() == f"wrote {tmp_path / 'r.md'}"
    text = (tmp_path / "r.md").read_text()
    for m in report["models"]:
        assert f"| {m['rank']} | {m['model']} | {m['rating']:.0f} |" in text
    table = run_arena(*base)
    assert table.returncode == 0
    assert "Ratings per judge" in table.stdout and "leaner" in table.stdout
    assert "biased" in table.stdout


# -- the HTML report in a real browser --------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _pixels(png: Path) -> dict[tuple[int, int, int], int]:
    pil = pytest.importorskip("PIL.Image", reason="Pillow reads the screenshot (dev extra)")
    with pil.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24)
    return {rgb: n for n, rgb in colours}


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def test_html_report_is_self_contained_and_renders_in_chromium(
    sim_db: Path, tmp_path: Path
) -> None:
    report = build_report(sim_db, RankOptions(rounds=100))
    page = html(report)
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert set(figures(report)) == {"ratings", "predicted", "observed", "timeline", "judges"}
    for m in report.models:
        assert f"<td>{m.model}</td>" in page
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium package)")
    out = tmp_path / "report.html"
    out.write_text(page)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1100,4200",
            f"--screenshot={shot}",
            out.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = _pixels(shot)

    def seen(colour: str, at_least: int) -> bool:
        r, g, b = _rgb(colour)
        near = sum(
            n
            for (x, y, z), n in pixels.items()
            if abs(x - r) <= 2 and abs(y - g) <= 2 and abs(z - b) <= 2
        )
        return near >= at_least

    # each figure's marks were painted: rating dots, judge dots, every model's line in the
    # timeline, and the heatmaps' cells in the colours their values call for
    assert seen(RATING_COLOUR, 8 * 60), "ratings figure not rendered"
    assert seen(JUDGE_COLOUR, 3 * 60), "judge panel not rendered"
    for k in range(len(report.models)):
        assert seen(PALETTE[k], 150), f"timeline line {k} not rendered"
    cells = [v for row in report.matrices.predicted for v in row if v is not None]
    extreme = max(cells, key=lambda v: abs(v - 0.5))
    assert seen(heat_colour(extreme), 400), "heatmap not rendered"


def test_a_value_that_rounds_to_zero_has_no_minus_sign() -> None:
    from eval.report.render import _num

    assert _num(-0.3, "{:+.0f}") == "+0"  # a FOR-side advantage of -0.3 Elo
    assert _num(-0.6, "{:+.0f}") == "-1"
    assert _num(-0.004, "{:.2f}") == "0.00"
    assert _num(-12.0) == "-12" and _num(float("nan")) == "n/a"
