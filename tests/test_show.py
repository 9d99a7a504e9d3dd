"""`arena show`: debates of a sim tournament read back turn by turn, with every verdict, in the
terminal, as Markdown and as JSON; selections checked against the stored rows; bad input is one
line; and a debate is shown while the tournament is still writing the file."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from arena.cli import app
from storage import run_query
from storage.live import read_live_info
from tests.conftest import REPO, arena_cmd, query, sim_models, topics, tournament, write_yaml

JUDGES = [
    {"name": "plain", "backend": "sim", "noise": 1.0},
    {"name": "lp", "backend": "sim", "verdict": "logprob", "tie_margin": 0.1},
    {"name": "swap", "backend": "sim", "noise": 1.5, "swap_check": True, "letter_bias": 1.0},
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("show")
    models = sim_models({"a": 1.0, "b": 0.0, "c": -0.5}, judges=JUDGES, turns=6)
    models["models"][0]["think_rate"] = 1.0  # every turn of `a` starts with a <think> block
    result = tournament(tmp, models, 2)
    assert result.returncode == 0, result.stderr
    return tmp / "arena.duckdb"


def show(*args: str | Path) -> tuple[int, str, str]:
    # wide enough that rich wraps no verdict line
    result = CliRunner().invoke(app, ["show", *[str(a) for a in args]], env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


def rows(db: Path, table: str, where: str = "") -> list[dict[str, Any]]:
    """Every column of `table`'s rows, as DuckDB itself reads them."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        cursor = con.execute(f"SELECT * FROM {table} {where}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_terminal_shows_turns_in_order_and_every_verdict(db: Path) -> None:
    # a debate of `a` (who thinks) that a swap-check judge read in both label orders
    [(debate_id,)] = query(
        db, "SELECT debate_id FROM debates WHERE for_model = 'a' ORDER BY debate_id LIMIT 1"
    )
    code, out, err = show("--db", db, debate_id[:8])  # a prefix is enough
    assert code == 0, err
    turns = query(
        db,
        "SELECT turn_index, side, role, model, reasoning FROM turns"
        f" WHERE debate_id = '{debate_id}' ORDER BY turn_index",
    )
    assert [r[2] for r in turns] == ["opening"] * 2 + ["rebuttal"] * 2 + ["closing"] * 2
    places = [
        out.index(f"Turn {i} · {side} · {role} · {model}") for i, side, role, model, _ in turns
    ]
    assert places == sorted(places)
    motion = query(
        db,
        "SELECT motion FROM topics JOIN debates USING (run_id, topic_id)"
        f" WHERE debate_id = '{debate_id}'",
    )
    assert motion[0][0] in out and debate_id in out
    # the thinking is folded, then unfolded with --think
    thought = next(r[4] for r in turns if r[4])
    assert out.count("thinking folded") == sum(1 for r in turns if r[4]) == 3
    assert thought not in out
    assert thought in show("--db", db, debate_id, "--think")[1]
    verdicts = query(
        db,
        "SELECT judge, variant, counts, winner, prob_for FROM verdicts"
        f" WHERE debate_id = '{debate_id}'",
    )
    assert sorted((j, v) for j, v, *_ in verdicts) == [
        ("lp", "sides"),
        ("plain", "sides"),
        ("swap", "for_a"),
        ("swap", "for_b"),
    ]
    verdict_lines = [line for line in out.splitlines() if line.startswith("  ") and " · " in line]
    for judge, variant, counts, winner, prob in verdicts:
        [line] = [v for v in verdict_lines if v.startswith(f"  {judge} · {variant}:")]
        assert f"· {winner} ·" in line
        assert ("does not count" not in line) == counts
        assert (prob is None) == ("P(FOR)" not in line)


def test_json_round_trips_the_stored_rows(db: Path) -> None:
    code, out, err = show("--db", db, "--format", "json", "--limit", "100")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["schema_version"] == 1
    debates = shown["debates"]
    assert len(debates) == len(query(db, "SELECT * FROM debates")) == 12  # 2 topics x 6 pairs

    def same(stored: dict[str, Any], given: dict[str, Any]) -> None:
        assert set(stored) == set(given)
        for key, value in stored.items():
            if isinstance(value, dt.datetime):
                assert dt.datetime.fromisoformat(given[key]) == value, key
            else:
                assert given[key] == value, key

    by_id = {d["debate"]["debate_id"]: d for d in debates}
    for stored in rows(db, "debates"):
        same(stored, by_id[stored["debate_id"]]["debate"])
    turns = [t for d in debates for t in d["turns"]]
    assert len(turns) == 72
    for stored, given in zip(
        rows(db, "turns", "ORDER BY debate_id, turn_index"),
        sorted(turns, key=lambda t: (t["debate_id"], t["turn_index"])),
        strict=True,
    ):
        same(stored, given)
    verdicts = [v for d in debates for v in d["verdicts"]]
    key = ("debate_id", "judge", "variant")
    for stored, given in zip(
        rows(db, "verdicts", "ORDER BY debate_id, judge, variant"),
        sorted(verdicts, key=lambda v: tuple(v[k] for k in key)),
        strict=True,
    ):
        same(stored, given)
    for d in debates:  # each debate's turns in order, under its own motion
        assert [t["turn_index"] for t in d["turns"]] == list(range(1, 7))
        assert {t["debate_id"] for t in d["turns"]} == {d["debate"]["debate_id"]}
        assert d["motion"] == topics(2)[int(d["debate"]["topic_id"][1:])]["motion"]


def _ids(db: Path, *args: str) -> list[str]:
    code, out, err = show("--db", db, "--format", "json", *args)
    assert code == 0, err
    return [d["debate"]["debate_id"] for d in json.loads(out)["debates"]]


def test_selections_pick_the_debates_the_rows_say(db: Path) -> None:
    debates = query(db, "SELECT debate_id, topic_id, for_model, against_model, winner FROM debates")
    every = {d[0] for d in debates}
    assert set(_ids(db, "--limit", "100")) == every
    assert len(_ids(db)) == 10  # the default limit
    assert len(_ids(db, "--limit", "3")) == 3
    assert set(_ids(db, "--topic", "t1", "--limit", "100")) == {
        d[0] for d in debates if d[1] == "t1"
    }
    both = {d[0] for d in debates if {"a", "c"} == {d[2], d[3]}}
    assert set(_ids(db, "--model", "a", "--model", "c")) == both and len(both) == 4
    won_by_b = {d[0] for d in debates if (d[4], "b") in (("FOR", d[2]), ("AGAINST", d[3]))}
    assert set(_ids(db, "--winner", "b", "--limit", "100")) == won_by_b
    assert set(_ids(db, "--winner", "against", "--limit", "100")) == {
        d[0] for d in debates if d[4] == "AGAINST"
    }
    readings: dict[str, set[str]] = {}
    for debate_id, winner in query(
        db, "SELECT debate_id, winner FROM verdicts WHERE valid AND variant <> 'both'"
    ):
        readings.setdefault(debate_id, set()).add(winner)
    disagree = {i for i, winners in readings.items() if len(winners) > 1}
    assert 0 < len(disagree) < len(every)  # the noisy, letter-biased swap judge sees to it
    assert set(_ids(db, "--judge-disagrees", "--limit", "100")) == disagree
    run = query(db, "SELECT run_id FROM runs")[0][0]
    assert set(_ids(db, "--run", run, "--limit", "100")) == every


def test_markdown_quotes_turns_and_tabulates_verdicts(db: Path) -> None:
    [(debate_id, n_verdicts)] = query(
        db,
        "SELECT debate_id, count(*) FROM verdicts WHERE debate_id IN"
        " (SELECT debate_id FROM debates WHERE against_model = 'a')"
        " GROUP BY debate_id ORDER BY debate_id LIMIT 1",
    )
    code, out, err = show("--db", db, debate_id, "--format", "markdown")
    assert code == 0, err
    headings = [line for line in out.splitlines() if line.startswith("### Turn")]
    sides = [h.split(" · ")[1] for h in headings]
    assert sides == ["FOR", "AGAINST"] * 3
    assert out.count("<details><summary>thinking") == 3  # a speaks AGAINST: turns 2, 4, 6
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + n_verdicts
    assert any("for_b: neutral labels" in line for line in table)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "run-x"], "--run: no run 'run-x'"),
        (["--topic", "t9"], "--topic: no topic 't9'"),
        (["--model", "zed"], "--model: no contestant 'zed'"),
        (["--winner", "zed"], "--winner: no contestant 'zed'"),
        (["abc", "--model", "a"], "give debate ids or a selection"),
    ],
)
def test_bad_selection_is_one_line(db: Path, args: list[str], message: str) -> None:
    code, out, err = show("--db", db, *args)
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and message in line, line


@pytest.mark.parametrize(
    ("args", "message"), [(["nosuchid"], "no debate 'nosuchid'"), (["--limit", "0"], "--limit")]
)
def test_the_command_says_one_line_and_exits_2(db: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        arena_cmd("show", "--db", db, *args),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line, line


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    code, out, err = show("--db", tmp_path / "none.duckdb", "abc")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_show_while_a_tournament_writes(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    models = sim_models({"a": 1.0, "b": 0.0}, judges=JUDGES[:1], turns=6, max_concurrency=1)
    for model in models["models"]:
        model["latency_s"] = 0.2  # 12 debates of 6 turns, one call at a time: 15 s at least
    write_yaml(tmp_path / "topics.yaml", topics(6))
    write_yaml(tmp_path / "models.yaml", models)
    files: list[str | Path] = [
        "--topics",
        tmp_path / "topics.yaml",
        "--models",
        tmp_path / "models.yaml",
    ]
    run = subprocess.Popen(
        arena_cmd("tournament", *files, "--db", db, "-q"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # until one debate is under way: some turns, not all
            assert run.poll() is None and time.monotonic() < deadline, "no debate under way"
            if read_live_info(db) is not None:
                playing = run_query(
                    db,
                    "SELECT debate_id, count(*) FROM turns GROUP BY debate_id"
                    " HAVING count(*) BETWEEN 2 AND 4 LIMIT 1",
                ).rows
                if playing:
                    break
            time.sleep(0.05)
        [(debate_id, _)] = playing
        code, out, err = show("--db", db, debate_id, "--format", "json")
        assert run.poll() is None, "the tournament finished before the debate was read"
        assert code == 0, err
        [shown] = json.loads(out)["debates"]
        n = len(shown["turns"])
        assert 2 <= n < 6  # mid-debate: the turns so far, in order, no verdict yet
        assert [t["turn_index"] for t in shown["turns"]] == list(range(1, n + 1))
        assert shown["verdicts"] == [] and shown["debate"]["winner"] is None
        code, out, err = show("--db", db, debate_id)
        assert code == 0, err
        assert f"Turn 1 · FOR · opening · {shown['debate']['for_model']}" in out
    finally:
        run.kill()
        run.wait()
