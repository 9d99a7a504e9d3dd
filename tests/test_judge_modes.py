"""Logprob verdicts, personas, rate limits and the budget, end to end on simulated models."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from arena.backends import GenerateSettings, Message
from arena.backends.sim import SimBackend, SimSpec
from arena.calling import Caller
from arena.config import RetrySettings
from tests.conftest import query as _query
from tests.conftest import sim_models
from tests.conftest import tournament as _run


def test_logprob_judge_stores_probabilities_that_follow_skill(tmp_path: Path) -> None:
    judges = [
        {"name": "lp", "backend": "sim", "verdict": "logprob", "noise": 1.0, "tie_margin": 0.02},
        {"name": "js", "backend": "sim", "noise": 1.0},
    ]
    models = sim_models({"strong": 2.0, "weak": -2.0, "mid": 0.0}, judges=judges, turns=4)
    result = _run(tmp_path, models, 3)
    assert result.returncode == 0, result.stderr
    db = tmp_path / "arena.duckdb"
    rows = _query(
        db,
        "select d.for_model, d.against_model, v.prob_for, v.winner, v.valid from verdicts v"
        " join debates d using (debate_id) where v.judge = 'lp'",
    )
    assert len(rows) == 18 and all(valid for *_, valid in rows)
    skill = {"strong": 2.0, "weak": -2.0, "mid": 0.0}
    for for_model, against_model, p_for, winner, _ in rows:
        expected = 1 / (1 + 2.718281828 ** -(skill[for_model] - skill[against_model]))
        assert abs(p_for - expected) < 0.05
        assert winner == ("FOR" if p_for > 0.52 else "AGAINST" if p_for < 0.48 else "TIE")
    # the JSON judge of the same run has no probability
    assert _query(db, "select count(*) from verdicts where judge = 'js' and prob_for is null") == [
        (18,)
    ]


def test_logprob_judge_without_logprobs_gives_invalid_verdicts(tmp_path: Path) -> None:
    models = sim_models({"a": 0.0, "b": 0.0}, turns=2)
    models["judges"] = [
        {"name": "s", "backend": "scripted", "replies": ["FOR"], "verdict": "logprob"}
    ]
    assert _run(tmp_path, models, 1).returncode == 0
    db = tmp_path / "arena.duckdb"
    assert _query(db, "select valid, winner, prob_for from verdicts") == [(False, None, None)] * 2
    assert _query(db, "select count(*) from debates where status = 'done' and winner is null") == [
        (2,)
    ]


def test_persona_reaches_the_system_prompt_only_of_its_model(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    scripted = {"backend": "scripted", "replies": ["An argument."]}
    models = {
        "tournament": {"turns": 2},
        "models": [
            {"name": "plain", **scripted, "log_file": str(log), "log_messages": True},
            {
                "name": "econ",
                **scripted,
                "persona": "a cautious economist who cites data",
                "log_file": str(log),
                "log_messages": True,
            },
        ],
        "judges": [{"name": "j", **scripted, "replies": ['{"winner": "TIE"}']}],
    }
    assert _run(tmp_path, models, 1).returncode == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 4
    for entry in entries:
        system = entry["messages"][0]["content"]
        assert ("a cautious economist who cites data" in system) == (entry["model"] == "econ")


def test_rate_limit_spaces_calls() -> None:
    spec = SimSpec(name="r", backend="sim", requests_per_minute=30)
    caller = Caller(
        {"r": SimBackend(spec)},
        max_concurrency=64,
        request_timeout_s=30,
        retry=RetrySettings(),
        record=lambda row: None,
        run_id="x",
    )
    settings = GenerateSettings(max_tokens=10, seed=0)

    async def go() -> float:
        start = time.perf_counter()
        await asyncio.gather(
            *(
                caller.call("r", [Message("user", f"q{i}")], settings, purpose="t", debate_id=None)
                for i in range(32)
            )
        )
        return time.perf_counter() - start

    elapsed = asyncio.run(go())
    # a bucket of 30, then one call every 2 s: the 31st and 32nd wait about 2 and 4 s
    assert 3.0 < elapsed < 8.0


def test_budget_stops_new_debates_and_a_rerun_with_more_continues(tmp_path: Path) -> None:
    models = sim_models({"a": 1.0, "b": 0.0, "c": -1.0}, turns=4, max_concurrency=2)
    for entry in models["models"]:
        entry["cost_per_1k_tokens"] = 1.0
    result = _run(tmp_path, models, 4, "--budget-usd", "0.5")
    assert result.returncode == 3, result.stderr
    assert "Budget of $0.50 reached" in result.stderr
    db = tmp_path / "arena.duckdb"
    done = _query(db, "select count(*) from debates where status = 'done'")[0][0]
    pending = _query(db, "select count(*) from debates where status = 'pending'")[0][0]
    assert 0 < done < 24 and done + pending == 24
    assert _query(db, "select sum(cost_usd) >= 0.5 from calls") == [(True,)]
    assert _query(db, "select status from runs") == [("incomplete",)]
    again = _run(tmp_path, models, 4, "--budget-usd", "1000")
    assert again.returncode == 0, again.stderr
    assert _query(db, "select count(*) from debates where status = 'done'") == [(24,)]
