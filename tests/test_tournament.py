"""End to end through the `arena` command: counts, skill order, faults, failures, reruns."""

from __future__ import annotations

import json
from pathlib import Path

from scipy.stats import spearmanr

from tests.conftest import query as _query
from tests.conftest import sim_models, topics
from tests.conftest import tournament as _tournament

SKILLS = {f"m{i}": skill for i, skill in enumerate([1.6, 1.1, 0.7, 0.3, -0.1, -0.5, -1.0, -1.5])}


def test_sim_tournament_counts_and_skill_order(tmp_path: Path) -> None:
    result = _tournament(tmp_path, sim_models(SKILLS, seed=3), 5)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    n_debates = 8 * 7 * 5
    assert _query(db, "select count(*), count(distinct debate_id) from debates") == [
        (n_debates, n_debates)
    ]
    assert _query(db, "select status, count(*) from debates group by all") == [("done", n_debates)]
    assert _query(db, "select count(*) from turns") == [(n_debates * 10,)]
    assert _query(db, "select count(*) from verdicts where valid") == [(n_debates,)]
    # every ordered pair, on every topic, once
    assert _query(
        db,
        "select count(*) from (select topic_id, for_model, against_model, count(*) c"
        " from debates group by all) where c = 1",
    ) == [(n_debates,)]
    # FOR opens and sides alternate; 5 turns each
    assert _query(
        db,
        "select count(*) from turns t join debates d using (debate_id) where"
        " (t.turn_index % 2 = 1) != (t.side = 'FOR')"
        " or t.model != case when t.side = 'FOR' then d.for_model else d.against_model end",
    ) == [(0,)]
    wins = dict(
        _query(
            db,
            "select m, avg(w) from (select for_model m, (winner = 'FOR')::int w from debates"
            " union all select against_model, (winner = 'AGAINST')::int from debates) group by m",
        )
    )
    names = list(SKILLS)
    rho = spearmanr([SKILLS[n] for n in names], [wins[n] for n in names]).statistic
    assert rho >= 0.9, wins
    # Expected win rates of the extremes are 0.82 and 0.18 (mean of sigmoid(skill gaps)); over
    # 70 debates each the standard deviation is 0.046, so 4 SD below and above:
    assert wins["m0"] > 0.64 and wins["m7"] < 0.36, wins
    # and the summary says so
    assert f"{n_debates}/{n_debates} debates done" in result.stderr


def test_rerun_is_a_no_op_and_extending_adds_only_new_debates(tmp_path: Path) -> None:
    models = sim_models({"a": 1.0, "b": 0.0, "c": -1.0}, turns=4)
    assert _tournament(tmp_path, models, 2).returncode == 0
    db = tmp_path / "arena.duckdb"
    before = _query(db, "select count(*) from calls")[0][0]
    again = _tournament(tmp_path, models, 2)
    assert again.returncode == 0
    assert "nothing left to do" in again.stderr
    assert _query(db, "select count(*) from calls")[0][0] == before
    # a fourth contestant and a third topic: only the new debates are played
    models["models"].append({"name": "d", "backend": "sim", "skill": 0.5})
    assert _tournament(tmp_path, models, 3).returncode == 0
    assert _query(db, "select count(*), count(distinct run_id) from debates") == [(4 * 3 * 3, 1)]
    assert _query(db, "select count(*) from turns") == [(4 * 3 * 3 * 4,)]
    assert _query(db, "select count(*) from calls where purpose = 'turn'") == [(36 * 4,)]
    # a second judge added later judges every finished debate once
    models["judges"].append({"name": "j2", "backend": "sim", "noise": 0.5})
    assert _tournament(tmp_path, models, 3).returncode == 0
    assert _query(db, "select judge, count(*) from verdicts group by all order by 1") == [
        ("j2", 36),
        ("judge", 36),
    ]


def test_changed_definitions_are_refused(tmp_path: Path) -> None:
    models = sim_models({"a": 1.0, "b": 0.0}, turns=2)
    assert _tournament(tmp_path, models, 1).returncode == 0
    models["models"][0]["skill"] = 2.0
    result = _tournament(tmp_path, models, 1)
    assert result.returncode == 2
    assert "contestant 'a' is defined differently" in result.stderr
    result = _tournament(tmp_path, sim_models({"a": 1.0, "b": 0.0}, turns=2), 1, "--run", "run-x")
    assert result.returncode == 0
    result = _tournament(tmp_path, sim_models({"a": 1.0, "b": 0.0}, turns=4), 1, "--run", "run-x")
    assert result.returncode == 2
    assert "run 'run-x' was started with turns=2" in result.stderr


def test_transient_faults_are_retried_until_every_debate_completes(tmp_path: Path) -> None:
    failures = {"rate_limit": 0.1, "server_error": 0.1, "timeout": 0.05, "malformed": 0.05}
    models = sim_models(
        {"a": 1.0, "b": 0.0, "c": -1.0},
        judges=[{"name": "j", "backend": "sim", "failures": failures}],
        turns=6,
        retry={"max_attempts": 15, "initial_backoff_s": 0.001, "max_backoff_s": 0.01},
    )
    for entry in models["models"]:
        entry["failures"] = failures
    result = _tournament(tmp_path, models, 4)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    assert _query(db, "select status, count(*) from debates group by all") == [("done", 24)]
    assert _query(db, "select count(*) from turns") == [(24 * 6,)]
    failed, total = _query(db, "select count(error), count(*) from calls")[0]
    assert 0.15 < failed / total < 0.45  # ~30% of attempts failed and were retried
    kinds = {
        k for (k,) in _query(db, "select distinct error_kind from calls where error is not null")
    }
    assert kinds == {"rate_limit", "server", "timeout", "malformed"}
    # judges that replied in prose were asked to repair; their verdicts are stored
    assert _query(db, "select count(*) from verdicts") == [(24,)]
    repaired = _query(db, "select count(*) from verdicts where repaired")[0][0]
    assert repaired > 0


def test_permanent_failure_fails_only_its_debates(tmp_path: Path) -> None:
    motion = topics(3)[1]["motion"]
    models = {
        "tournament": {"turns": 4},
        "models": [
            {"name": "a", "backend": "sim", "skill": 1},
            {"name": "b", "backend": "sim"},
            {
                "name": "broken",
                "backend": "scripted",
                "replies": ["I argue this."],
                "fail_if_contains": motion,
            },
        ],
        "judges": [{"name": "j", "backend": "sim"}],
    }
    result = _tournament(tmp_path, models, 3)
    assert result.returncode == 1
    assert "Some debates failed; rerun to retry them" in result.stderr
    db = tmp_path / "arena.duckdb"
    failed = _query(
        db, "select topic_id, for_model, against_model, error from debates where status='failed'"
    )
    assert {(t, f, a) for t, f, a, _ in failed} == {
        ("t1", "broken", "a"),
        ("t1", "broken", "b"),
        ("t1", "a", "broken"),
        ("t1", "b", "broken"),
    }
    assert all("bad_request" in error for *_, error in failed)
    assert _query(db, "select count(*) from debates where status = 'done'") == [(18 - 4,)]
    # the failed call was not retried: one attempt each
    assert _query(db, "select max(attempt) from calls where error is not null") == [(1,)]
    assert _query(db, "select status from runs") == [("incomplete",)]


def test_think_blocks_are_kept_raw_and_hidden_from_others(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    scripted = {
        "backend": "scripted",
        "replies": ["<think>secret plan</think>My argument."],
        "log_file": str(log),
        "log_messages": True,
    }
    judge = {**scripted, "replies": ['{"winner": "TIE", "rationale": "even"}']}
    models = {
        "tournament": {"turns": 4},
        "models": [{"name": "a", **scripted}, {"name": "b", **scripted}],
        "judges": [{"name": "j", **judge}],
    }
    assert _tournament(tmp_path, models, 1).returncode == 0
    rows = _query(tmp_path / "arena.duckdb", "select text, raw_text, reasoning from turns")
    assert rows == [("My argument.", "<think>secret plan</think>My argument.", "secret plan")] * 8
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(requests) == 8 + 2  # 8 turns, 2 verdicts
    seen = [m["content"] for r in requests for m in r["messages"]]
    assert any("My argument." in c for c in seen)
    assert not any("secret plan" in c or "<think>" in c for c in seen)


def test_deterministic_under_seed(tmp_path: Path) -> None:
    models = sim_models({"a": 0.5, "b": 0.0, "c": -0.5}, turns=4)
    for entry in models["models"]:
        entry["failures"] = {"server_error": 0.2}
        entry["jitter_s"] = 0.01  # scheduling order differs between runs; results must not
    models["tournament"]["retry"] = {"initial_backoff_s": 0.0, "max_attempts": 20}
    sql = (
        "select d.topic_id, d.for_model, d.against_model, d.winner, t.turn_index, t.text"
        " from debates d join turns t using (debate_id) order by all"
    )
    results = []
    for name, seed in (("one", "1"), ("two", "1"), ("three", "2")):
        (tmp_path / name).mkdir()
        assert _tournament(tmp_path / name, models, 2, "--seed", seed).returncode == 0
        results.append(_query(tmp_path / name / "arena.duckdb", sql))
    assert len(results[0]) == 3 * 2 * 2 * 4
    assert results[0] == results[1]
    assert results[0] != results[2]
