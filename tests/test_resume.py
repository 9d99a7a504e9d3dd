"""Kill a tournament at any moment and continue it; query it while it runs; one writer per file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import REPO, arena_cmd, run_arena, topics, write_yaml
from tests.conftest import query as _query

N_MODELS, N_TOPICS, TURNS = 4, 2, 10
N_DEBATES = N_MODELS * (N_MODELS - 1) * N_TOPICS
N_TURNS = N_DEBATES * TURNS


def _setup(tmp_path: Path, delay_s: float) -> list[str]:
    log = tmp_path / "requests.jsonl"
    scripted = {
        "backend": "scripted",
        "replies": ["First point, made well.", "A second point.", "A rebuttal of theirs."],
        "delay_s": delay_s,
        "log_file": str(log),
    }
    models = {
        "tournament": {"turns": TURNS, "max_concurrency": 6},
        "models": [{"name": f"s{i}", **scripted} for i in range(N_MODELS)],
        "judges": [{"name": "j", **scripted, "replies": ['{"winner": "FOR", "rationale": "r"}']}],
    }
    write_yaml(tmp_path / "topics.yaml", topics(N_TOPICS))
    write_yaml(tmp_path / "models.yaml", models)
    return [
        "tournament",
        "--topics",
        str(tmp_path / "topics.yaml"),
        "--models",
        str(tmp_path / "models.yaml"),
        "--db",
        str(tmp_path / "arena.duckdb"),
        "-q",
    ]


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        arena_cmd(*args),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _log_requests(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _turn_requests(db: Path) -> Counter[str]:
    rows = _query(db, "select c.request_hash from turns t join calls c using (call_id)")
    return Counter(r for (r,) in rows)


def test_sigkill_mid_run_then_rerun_continues_without_repeating(tmp_path: Path) -> None:
    args = _setup(tmp_path, delay_s=0.1)
    log, db = tmp_path / "requests.jsonl", tmp_path / "arena.duckdb"
    proc = _start(args)
    deadline = time.monotonic() + 60
    while len(_log_requests(log)) < N_TURNS // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.2)  # what was recorded a second ago is on disk
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first_pid = proc.pid
    asked_first = len([e for e in _log_requests(log) if e["model"] != "j"])

    recorded = _turn_requests(db)
    n_recorded = sum(recorded.values())
    assert 0 < n_recorded < N_TURNS, "the kill must land mid-run"
    # everything asked more than a second before the kill was durable (a few calls in flight)
    assert n_recorded >= asked_first - 2 * 6 - 1.2 / 0.1 * 6

    rerun = run_arena(*args, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "continuing run" in rerun.stderr

    # The rerun asked exactly for the turns that were not recorded, each once. (Identical
    # requests occur in several debates, so compare counts per request, not sets.)
    asked_again = Counter(
        e["request"] for e in _log_requests(log) if e["pid"] != first_pid and e["model"] != "j"
    )
    final = _turn_requests(db)
    assert asked_again == final - recorded
    assert sum(asked_again.values()) == N_TURNS - n_recorded
    assert _query(db, "select count(*), count(distinct debate_id) from debates") == [
        (N_DEBATES, N_DEBATES)
    ]
    assert _query(db, "select status, count(*) from debates group by all") == [("done", N_DEBATES)]
    assert _query(db, "select count(*), count(distinct (debate_id, turn_index)) from turns") == [
        (N_TURNS, N_TURNS)
    ]
    assert _query(db, "select count(*) from verdicts") == [(N_DEBATES,)]
    # every debate's turns are gap-free and complete
    assert _query(
        db,
        "select count(*) from (select debate_id, max(turn_index) m, count(*) c from turns"
        " group by all) where m != c or c != 10",
    ) == [(0,)]
    assert _query(db, "select status from runs") == [("complete",)]


def test_sql_answers_while_a_tournament_runs_and_a_second_writer_is_refused(
    tmp_path: Path,
) -> None:
    args = _setup(tmp_path, delay_s=0.2)
    db = tmp_path / "arena.duckdb"
    proc = _start(args)
    counts: list[int] = []
    second: subprocess.CompletedProcess[str] | None = None
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            result = run_arena("sql", "select count(*) as n from turns", "--db", db, "-f", "json")
            if result.returncode == 0:
                counts.append(json.loads(result.stdout)[0]["n"])
                if second is None and counts[-1] > 0:
                    second = run_arena(*args)
            else:
                # only before the tournament has opened the file may a query fail
                assert "no database" in result.stderr or not counts, result.stderr
            if len(counts) >= 4 and counts[-1] > counts[0]:
                break
            time.sleep(0.2)
        still_running = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert still_running, "the tournament ended before the test could query it live"
    assert any(0 < c < N_TURNS for c in counts), counts
    assert counts == sorted(counts) and counts[-1] > counts[0], counts
    assert second is not None and second.returncode == 2
    assert "in use" in second.stderr and str(proc.pid) in second.stderr
    # Ctrl-C: a clean stop that says how to continue, and keeps what was recorded
    assert proc.returncode == 130, err
    assert "Continue with: arena tournament" in err
    kept = _query(db, "select count(*) from turns")[0][0]
    assert kept >= counts[-1]
    assert _query(db, "select status from runs") == [("interrupted",)]
    # a write through `arena sql` is refused
    refused = run_arena("sql", "delete from turns", "--db", db)
    assert refused.returncode == 2 and "read-only" in refused.stderr.lower()
