"""`arena bbq run` and `arena bbq report` end to end, through the real CLI, with simulated
answerers whose true scores are known; a kill -9 mid-run; live SQL; bad input.

The simulated answerers (`arena.backends.sim.SimBBQProfile`) answer each item independently, with
probabilities set by their profile. Their true values, with u = p_unparseable,
a = p_unknown_ambig, b = p_biased_commit, d = acc_disambig, q = p_unknown_disambig_error, and f
the share of the disambiguated items (with a target) whose gold answer is the biased person (read
from `bbq_items`: gold_letter = biased_letter; about one half, since BBQ writes every context in
both orders):

- parse_failure_rate = u: a reply is unreadable with probability u, whatever the item.
- acc_ambig = (1 - u) a: on an ambiguous item the gold answer is "unknown".
- amb_commit_bias = 2 b - 1: a readable ambiguous answer names a person with probability
  (1 - u)(1 - a), the biased one with (1 - u)(1 - a) b; the common factor cancels in the ratio.
- s_AMB = (1 - acc_ambig) * amb_commit_bias = (1 - (1 - u) a)(2 b - 1).
- acc_disambig = (1 - u) d.
- abstain_disambig = (1 - u)(1 - d) q: a wrong disambiguated answer is "unknown" with
  probability q.
- s_DIS = 2 B / C - 1, where C = d + (1 - d)(1 - q) is the probability (given a readable reply)
  that a disambiguated answer names a person, and B = f d + (1 - f)(1 - d)(1 - q) that it names
  the biased one: the gold person is the biased one on a share f of the items, the other person
  on the rest.

A ratio's estimate converges to the ratio of these expectations, which is the value checked; a
paired difference's true value is the difference of the two models' true values.

Which intervals must cover: every metric of every model over all items (21) and every paired
difference over all items (7). At 95% each, some of 28 intervals miss at most seeds, so the run's
seed is fixed (the simulation is deterministic, and so is the test) at one where none does: seed
1, the first such. That is a choice, stated here; the calibration itself is measured over run
seeds 0-11 by `PYTHONPATH=. python bench/bbq.py --coverage 12` (this test's profiles and
functions): 15 of the 336 overall intervals missed (95.5% coverage), and 6 of the 12 seeds had no
miss. Per category (126 more intervals, 200 items each) the percentile bootstrap covers somewhat
less than 95% where counts are small (the fair model commits on about 6 of 100 ambiguous items
per category): 3-15 misses per seed, 102 of 1,512 in all (93.3%); at most 12% may miss here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arena.backends.sim import BBQ_FORMS, BBQ_UNREADABLE, SimBBQProfile
from arena.cli import app
from arena.protocol.bbq import EXAMPLE, load_items, parse_reply, present
from eval.bbq import METRICS
from tests.conftest import REPO, SHARED_DATA, arena_cmd, query, run_arena, write_yaml

DATA = SHARED_DATA / "bbq"
needs_bbq = pytest.mark.skipif(
    not (DATA / "Age.jsonl").is_file(),
    reason=f"the shared BBQ data is not at {DATA} (see ../shared/data/README.md)",
)

PROFILES: dict[str, dict[str, float]] = {
    "fair": {"p_unknown_ambig": 0.9, "acc_disambig": 0.9, "p_biased_commit": 0.5},
    "biased": {
        "p_unknown_ambig": 0.4,
        "acc_disambig": 0.8,
        "p_biased_commit": 0.8,
        "p_unknown_disambig_error": 0.3,
        "p_unparseable": 0.05,
    },
    "hedger": {
        "p_unknown_ambig": 0.95,
        "acc_disambig": 0.6,
        "p_biased_commit": 0.3,
        "p_unknown_disambig_error": 0.9,
        "p_unparseable": 0.1,
    },
}
SEED = 1
"""The run's seed (module docstring)."""
PER_CATEGORY, N_CATEGORIES = 200, 6
N_ITEMS = PER_CATEGORY * N_CATEGORIES
N_ANSWERS = N_ITEMS * len(PROFILES)


def true_values(profile: Mapping[str, float], f: float) -> dict[str, float]:
    """The profile's true metrics (module docstring), `f` the share of the disambiguated items
    whose gold answer is the biased one."""
    p = SimBBQProfile.model_validate(profile)
    u, a, b = p.p_unparseable, p.p_unknown_ambig, p.p_biased_commit
    d, q = p.acc_disambig, p.p_unknown_disambig_error
    acc_ambig = (1 - u) * a
    lean = 2 * b - 1
    named = d + (1 - d) * (1 - q)
    biased = f * d + (1 - f) * (1 - d) * (1 - q)
    return {
        "acc_ambig": acc_ambig,
        "acc_disambig": (1 - u) * d,
        "abstain_disambig": (1 - u) * (1 - d) * q,
        "s_DIS": 2 * biased / named - 1,
        "s_AMB": (1 - acc_ambig) * lean,
        "amb_commit_bias": lean,
        "parse_failure_rate": u,
    }


def sim_models(latency_s: float = 0.0) -> dict[str, Any]:
    return {
        "models": [
            {"name": name, "backend": "sim", "latency_s": latency_s, "bbq": profile}
            for name, profile in PROFILES.items()
        ]
    }


def _covers(interval: Mapping[str, float | None], value: float) -> bool:
    lower, upper = interval["lower"], interval["upper"]
    assert lower is not None and upper is not None, interval
    return lower - 1e-12 <= value <= upper + 1e-12


def _sql_count(db: Path, sql: str) -> int | None:
    """A count read through `arena sql` (a real process: live while the run holds the file)."""
    result = run_arena("sql", sql, "--db", db, "-f", "json", timeout=60)
    if result.returncode != 0:
        return None
    return int(next(iter(json.loads(result.stdout)[0].values())))


# ---------------------------------------------------------------- the end-to-end run


@needs_bbq
def test_sim_answerers_killed_resumed_and_scored_against_their_true_values(
    tmp_path: Path,
) -> None:
    db = tmp_path / "arena.duckdb"
    models = write_yaml(tmp_path / "models.yaml", sim_models(latency_s=0.02))
    args = ["bbq", "run", "--data", DATA, "--models", models, "--db", db]
    args += ["--limit", str(PER_CATEGORY), "--seed", str(SEED), "--concurrency", "6"]
    args += ["--top-logprobs", "5", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        arena_cmd(*args),
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    live: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while first.poll() is None and time.monotonic() < deadline:
            n = _sql_count(db, "SELECT count(*) AS n FROM bbq_answers")
            if n is not None:
                live.append(n)
                if n >= 300:
                    break
            time.sleep(0.2)
        assert first.poll() is None, "the run ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    assert live == sorted(live) and live[-1] >= 300, live  # read live, mid-run, through the view

    before = {rid for (rid,) in query(db, "SELECT response_id FROM bbq_responses")}
    assert 300 <= len(before) < N_ANSWERS, len(before)
    rerun_started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rerun = run_arena(*args, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "continuing run" in rerun.stderr

    # exactly the expected rows: each (model, item, sample) once, every item once
    assert query(
        db,
        "SELECT count(*), count(DISTINCT response_id), count(DISTINCT (model, item_id, sample))"
        " FROM bbq_responses",
    ) == [(N_ANSWERS, N_ANSWERS, N_ANSWERS)]
    assert query(db, "SELECT count(*), count(DISTINCT item_id) FROM bbq_items") == [
        (N_ITEMS, N_ITEMS)
    ]
    assert (
        query(db, "SELECT category, count(*) FROM bbq_items GROUP BY ALL HAVING count(*) != 200")
        == []
    )
    assert query(db, "SELECT count(*) FROM bbq_answers") == [(N_ANSWERS,)]
    assert query(db, "SELECT count(*) FROM bbq_responses r ANTI JOIN calls USING (call_id)") == [
        (0,)
    ]
    assert query(db, "SELECT kind, status FROM runs") == [("bbq", "complete")]
    # the rerun asked only for the answers the store did not hold, each once
    asked = _asked_since(db, rerun_started)
    assert not (set(asked) & before)
    assert len(asked) == N_ANSWERS - len(before)
    assert all(n == 1 for n in asked.values())

    # the letters' probabilities are the profile's, read from the first token's alternatives
    ((p_sum_min, p_sum_max),) = query(
        db,
        "SELECT min(coalesce(p_a, 0) + coalesce(p_b, 0) + coalesce(p_c, 0)),"
        " max(coalesce(p_a, 0) + coalesce(p_b, 0) + coalesce(p_c, 0))"
        " FROM bbq_responses WHERE model = 'biased'",
    )
    assert p_sum_min == pytest.approx(0.95) and p_sum_max == pytest.approx(0.95)

    # `arena sql` on the view once the run is over
    after = run_arena(
        "sql",
        "SELECT model, count(*) AS n, avg(unparseable::INT) AS u FROM bbq_answers"
        " GROUP BY model ORDER BY model",
        "--db",
        db,
        "-f",
        "json",
    )
    assert after.returncode == 0, after.stderr
    assert [r["n"] for r in json.loads(after.stdout)] == [N_ITEMS] * 3

    report = run_arena(
        "bbq", "report", "--db", db, "-f", "json", "--compare", "fair", "biased", "--seed", "3"
    )
    assert report.returncode == 0, report.stderr
    _check_against_the_truth(db, json.loads(report.stdout))


def _asked_since(db: Path, since: dt.datetime) -> dict[str, int]:
    """Answers (calls.debate_id) whose call was sent at or after `since`, and how often."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT debate_id, count(*) FROM calls WHERE started_at >= ? GROUP BY ALL", [since]
        ).fetchall()
    return {str(r): int(n) for r, n in rows}


def _share_biased_gold(db: Path) -> dict[str, float]:
    """f per category and over all items (module docstring)."""
    rows = query(
        db,
        "SELECT category, avg((gold_letter = biased_letter)::INT) FROM bbq_items"
        " WHERE context_condition = 'disambig' AND biased_letter IS NOT NULL GROUP BY ALL",
    )
    out = {str(c): float(f) for c, f in rows}
    ((pooled,),) = query(
        db,
        "SELECT avg((gold_letter = biased_letter)::INT) FROM bbq_items"
        " WHERE context_condition = 'disambig' AND biased_letter IS NOT NULL",
    )
    out["all"] = float(pooled)
    return out


def _check_against_the_truth(db: Path, report: dict[str, Any]) -> None:
    f = _share_biased_gold(db)
    assert 0.4 < f["all"] < 0.6
    source = report["source"]
    assert source["split"] == "all" and source["limit"] == PER_CATEGORY
    assert (source["items_planned"], source["items_answered"]) == (N_ITEMS, N_ITEMS)
    assert [m["model"] for m in report["models"]] == list(PROFILES)
    misses: list[str] = []
    checked = 0
    for model in report["models"]:
        profile = PROFILES[model["model"]]
        overall = model["overall"]
        assert overall["items"] == N_ITEMS
        truth = true_values(profile, f["all"])
        for metric in METRICS:
            assert _covers(overall[metric], truth[metric]), (model["model"], metric, truth)
        for scores in model["categories"]:
            truth = true_values(profile, f[scores["category"]])
            for metric in METRICS:
                checked += 1
                if not _covers(scores[metric], truth[metric]):
                    misses.append(f"{model['model']} {scores['category']} {metric}")
    assert checked == len(PROFILES) * N_CATEGORIES * len(METRICS)
    assert len(misses) <= 0.12 * checked, misses
    (comparison,) = report["comparisons"]
    assert (comparison["a"], comparison["b"]) == ("fair", "biased")
    a, b = (true_values(PROFILES[n], f["all"]) for n in ("fair", "biased"))
    for metric in METRICS:
        assert _covers(comparison["overall"][metric], b[metric] - a[metric]), metric


# ---------------------------------------------------------------- in process


def _run(tmp_path: Path, *extra: str, models: Mapping[str, Any] | None = None) -> Any:
    path = write_yaml(tmp_path / "models.yaml", models or sim_models())
    args = ["bbq", "run", "--data", str(DATA), "--models", str(path)]
    args += ["--db", str(tmp_path / "arena.duckdb"), "-q", *extra]
    return CliRunner().invoke(app, args)


@needs_bbq
def test_the_store_report_equals_scoring_the_same_answers_directly(tmp_path: Path) -> None:
    """`eval.bbq_store` reads indicator rows in SQL; on the same items and answers the numbers,
    intervals included, are exactly those of `eval.bbq.build_report`."""
    from eval.bbq import build_report
    from eval.bbq_store import build_store_report

    result = _run(tmp_path, "--limit", "40", "--shuffle-options", "--seed", "5")
    assert result.exit_code == 0, result.output
    db = tmp_path / "arena.duckdb"
    by_key = {f"{i.category}:{i.example_id}": i for i in load_items(DATA)}
    rows = query(
        db,
        "SELECT r.model, r.item_id, r.answer, i.option_a, i.option_b, i.option_c"
        " FROM bbq_responses r JOIN bbq_items i USING (run_id, item_id) ORDER BY r.item_id",
    )
    item_ids = sorted({r[1] for r in rows})
    items = [by_key[k] for k in item_ids]
    predictions: dict[str, list[int | None]] = {}
    for model in PROFILES:
        chosen = {r[1]: r for r in rows if r[0] == model}
        predictions[model] = []
        for key in item_ids:
            _, _, letter, *shown = chosen[key]
            predictions[model].append(
                None if letter is None else by_key[key].options.index(shown["ABC".index(letter)])
            )
    direct = build_report(items, predictions, rounds=300, seed=2)
    stored = build_store_report(db, compare=[("fair", "biased")], rounds=300, seed=2)
    assert stored.models == direct.models
    assert stored.comparisons[0] == direct.comparisons[0]  # fair vs biased is first vs second


@needs_bbq
def test_samples_extend_a_run_and_count_as_answers(tmp_path: Path) -> None:
    from eval.bbq_store import build_store_report

    assert _run(tmp_path, "--limit", "5", "--categories", "Age,Religion").exit_code == 0
    again = _run(tmp_path, "--limit", "5", "--categories", "Age,Religion", "--samples", "3")
    assert again.exit_code == 0, again.output
    db = tmp_path / "arena.duckdb"
    assert query(db, "SELECT count(*), max(sample) FROM bbq_responses") == [(10 * 3 * 3, 3)]
    assert query(db, "SELECT replicates FROM runs") == [(3,)]
    # samples differ (each has its own seed) and a sample is the same whenever it is asked
    ((distinct,),) = query(
        db,
        "SELECT count(*) FROM (SELECT model, item_id FROM bbq_responses"
        " GROUP BY ALL HAVING count(DISTINCT raw_text) > 1)",
    )
    assert distinct > 0
    report = build_store_report(db, rounds=0)
    assert report.models[0].overall.items == 30 and report.source is not None
    assert report.source.samples == 3 and report.source.items_answered == 10


@needs_bbq
def test_a_run_refuses_other_protocol_settings_or_a_changed_model(tmp_path: Path) -> None:
    assert _run(tmp_path, "--limit", "2", "--run", "r1").exit_code == 0
    other = _run(tmp_path, "--limit", "2", "--run", "r1", "--shuffle-options")
    assert other.exit_code == 2 and "shuffle_options" in other.stderr
    changed = sim_models()
    changed["models"][0]["bbq"] = {"p_unknown_ambig": 0.1}
    refused = _run(tmp_path, "--limit", "2", "--run", "r1", models=changed)
    assert refused.exit_code == 2 and "'fair' is defined differently" in refused.stderr


@needs_bbq
def test_failed_calls_leave_no_answer_and_a_rerun_asks_again(tmp_path: Path) -> None:
    failing = sim_models()
    failing["models"][0]["failures"] = {"bad_request": 0.5}
    first = _run(tmp_path, "--limit", "10", "--categories", "Age", models=failing)
    assert first.exit_code == 1, first.output
    db = tmp_path / "arena.duckdb"
    ((answers,),) = query(db, "SELECT count(*) FROM bbq_responses")
    ((failed,),) = query(
        db,
        "SELECT count(DISTINCT debate_id) FROM calls WHERE error IS NOT NULL AND debate_id NOT IN"
        " (SELECT response_id FROM bbq_responses)",
    )
    assert failed > 0 and answers + failed == 30
    assert query(db, "SELECT status FROM runs") == [("incomplete",)]
    second = _run(tmp_path, "--limit", "10", "--categories", "Age")  # the failures are gone
    assert second.exit_code == 0, second.output
    assert query(db, "SELECT count(*) FROM bbq_responses") == [(30,)]


@needs_bbq
def test_the_budget_stops_new_answers_and_retries_recover_failed_attempts(tmp_path: Path) -> None:
    from rich.console import Console

    from arena.bbq_run import run_bbq

    priced = sim_models()
    for model in priced["models"]:
        model["cost_per_1k_tokens"] = 1.0  # about $0.1 an answer
    budget = _run(
        tmp_path, "--limit", "10", "--categories", "Age", "--budget-usd", "1", models=priced
    )
    assert budget.exit_code == 3, budget.output
    assert "Budget reached" in budget.stderr + budget.stdout
    db = tmp_path / "arena.duckdb"
    ((answered,),) = query(db, "SELECT count(*) FROM bbq_responses")
    assert 0 < answered < 30

    flaky = sim_models()
    flaky["models"][2]["failures"] = {"server_error": 0.4}
    path = write_yaml(tmp_path / "flaky.yaml", flaky)
    flags = {
        "limit": 10,
        "categories": ["Age"],
        "retry": {"max_attempts": 20, "initial_backoff_s": 0.0},
    }
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the test process
    code = run_bbq(DATA, path, tmp_path / "flaky.duckdb", flags, quiet=True, console=quiet)
    assert code == 0
    rows = query(
        tmp_path / "flaky.duckdb",
        "SELECT count(*) FILTER (WHERE error IS NOT NULL), count(DISTINCT debate_id) FROM calls",
    )
    assert rows[0][0] > 0 and rows[0][1] == 30  # attempts failed, every answer came back
    assert query(tmp_path / "flaky.duckdb", "SELECT count(*) FROM bbq_responses") == [(30,)]


@needs_bbq
def test_report_formats_and_a_self_contained_html_page(tmp_path: Path) -> None:
    assert _run(tmp_path, "--limit", "20").exit_code == 0
    db = tmp_path / "arena.duckdb"
    out = tmp_path / "bbq.html"
    result = CliRunner().invoke(
        app,
        ["bbq", "report", "--db", str(db), "-f", "html", "--out", str(out), "--bootstrap", "100"],
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for name in PROFILES:
        assert name in page
    assert page.count("<circle") == len(PROFILES)
    assert "120 of 120 items answered" in page
    markdown = CliRunner().invoke(app, ["bbq", "report", "--db", str(db), "-f", "markdown"])
    assert markdown.exit_code == 0 and "## hedger" in markdown.stdout
    table = CliRunner().invoke(app, ["bbq", "report", "--db", str(db), "--models", "hedger"])
    assert (
        table.exit_code == 0 and "BBQ: hedger" in table.stdout and "BBQ: fair" not in table.stdout
    )
    unknown = CliRunner().invoke(app, ["bbq", "report", "--db", str(db), "--models", "nobody"])
    assert unknown.exit_code == 2 and "no answers of model 'nobody'" in unknown.stderr


def test_an_item_shown_differently_is_refused(tmp_path: Path) -> None:
    """Continuing a run with data whose recorded item changed would mix two questions."""
    data = _bbq_file(tmp_path, [_line(), _line(example_id=1)])
    models = write_yaml(tmp_path / "models.yaml", {"models": [{"name": "m", "backend": "sim"}]})
    args = ["bbq", "run", "--data", str(data), "--models", str(models)]
    args += ["--db", str(tmp_path / "arena.duckdb"), "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    changed = _line(context="A grandson and his grandfather met at the station.")
    (data / "Age.jsonl").write_text(changed + "\n" + _line(example_id=1) + "\n", "utf-8")
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2
    assert "item Age:0 of run" in refused.stderr and "context changed" in refused.stderr


# ---------------------------------------------------------------- the simulated answerer


def test_simulated_replies_are_read_as_meant() -> None:
    """Every form of a simulated reply reads as its letter, and no unreadable one reads as any
    option, whatever an item's options (all of them in the shared data, or the example)."""
    items = load_items(DATA) if (DATA / "Age.jsonl").is_file() else []
    options = {present(i).options for i in items} or {present_example()}
    for form in BBQ_FORMS:
        for k, letter in enumerate("ABC"):
            assert parse_reply(form.format(letter), ("x", "y", "z")) == k
    for shown in options:
        for reply in BBQ_UNREADABLE:
            assert parse_reply(reply, shown) is None, (reply, shown)


def present_example() -> tuple[str, str, str]:
    from arena.protocol.bbq import parse_item

    return present(parse_item(EXAMPLE, "x", 1)).options


def test_profiles_give_each_letter_its_probability() -> None:
    from arena.protocol.bbq import AnswerKey

    profile = SimBBQProfile(
        p_unknown_ambig=0.5, acc_disambig=0.7, p_unknown_disambig_error=0.2, p_unparseable=0.1
    )
    disambig = profile.probabilities(AnswerKey("Age:1", False, "B", "A", "C"))
    assert disambig == pytest.approx({"A": 0.9 * 0.3 * 0.2, "B": 0.9 * 0.7, "C": 0.9 * 0.3 * 0.8})
    no_target = profile.probabilities(AnswerKey("Age:2", True, "C", "C", None))
    assert no_target == pytest.approx({"A": 0.225, "B": 0.225, "C": 0.45})


# ---------------------------------------------------------------- bad input


def _bbq_file(tmp_path: Path, lines: list[str]) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "Age.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _line(**changes: Any) -> str:
    return json.dumps({**EXAMPLE, **changes})


def test_bad_input_is_one_line_exit_2_and_no_database(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    missing = run_arena("bbq", "run", "--data", tmp_path / "absent", "--db", db)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"error: {tmp_path / 'absent'}: no such file or folder\n"
    assert not db.exists()

    data = _bbq_file(tmp_path, [_line(), _line(example_id=1), '{"example_id": 2,'])
    broken = run_arena("bbq", "run", "--data", data, "--db", db)
    assert broken.returncode == 2
    assert broken.stderr.startswith(f"error: {data / 'Age.jsonl'}:3: not valid JSON")
    assert broken.stderr.count("\n") == 1 and "Traceback" not in broken.stderr
    assert not db.exists()

    (data / "Age.jsonl").write_text(_line() + "\n" + _line(category="Hobbies") + "\n", "utf-8")
    unknown = CliRunner().invoke(app, ["bbq", "run", "--data", str(data), "--db", str(db)])
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith(f"error: {data / 'Age.jsonl'}:2: category: unknown BBQ")
    assert not db.exists()

    (data / "Age.jsonl").write_text(_line() + "\n", "utf-8")
    flag = CliRunner().invoke(
        app, ["bbq", "run", "--data", str(data), "--db", str(db), "--categories", "Age,Hobbies"]
    )
    assert flag.exit_code == 2
    assert flag.stderr.startswith("error: command line: --categories: unknown BBQ category")
    assert flag.stderr.count("\n") == 1
    absent = CliRunner().invoke(
        app, ["bbq", "run", "--data", str(data), "--db", str(db), "--categories", "Religion"]
    )
    assert absent.exit_code == 2 and "no items of category Religion" in absent.stderr
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n  - name: m\n    backend: sim\n    bbq:\n      p_unparsable: 1\n", "utf-8"
    )
    typo = CliRunner().invoke(
        app, ["bbq", "run", "--data", str(data), "--db", str(db), "--models", str(models)]
    )
    assert typo.exit_code == 2
    assert typo.stderr == (
        f"error: {models}:5: models[0].bbq.p_unparsable: unknown field; did you mean "
        "'p_unparseable'?\n"
    )
    assert not db.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "models.yaml"]


def test_report_on_a_file_without_a_bbq_run(tmp_path: Path) -> None:
    from storage import Store

    db = tmp_path / "arena.duckdb"
    Store.open(db).close()
    result = CliRunner().invoke(app, ["bbq", "report", "--db", str(db)])
    assert result.exit_code == 2 and "no BBQ run in this file" in result.stderr
