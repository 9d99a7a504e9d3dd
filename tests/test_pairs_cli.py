"""`arena pairs` in process (typer's runner): options, the summary, every bad input, and a run
while a tournament writes to the same file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from arena.cli import app
from storage import Store, run_query
from storage.live import read_live_info
from tests.conftest import REPO, arena_cmd, sim_models, topics, write_yaml
from tests.test_pairs import VOTED, VOTES, fill


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "arena.duckdb"
    again = [replace(d, debate_id=d.debate_id + "b", topic_id="t2") for d in VOTED]
    votes = {**VOTES, **{k + "b": v for k, v in VOTES.items()}}
    with Store.open(path) as store:
        fill(store, [*VOTED, *again], verdicts=votes)
    return path


def pairs(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["pairs", *[str(a) for a in args]])
    return result.exit_code, result.output


def read(path: Path, sql: str = "SELECT count(*) FROM t") -> list[tuple[object, ...]]:
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW t AS SELECT * FROM '{path}'")
        return con.execute(sql).fetchall()


def test_options_reach_the_file_and_the_summary(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "pairs.parquet"
    # two topics like VOTED: 8 pairs each by majority; unanimous debates only: 2 each
    code, output = pairs("--db", db, "--out", out, "--test-topics", "t2")
    assert code == 0, output
    assert output.splitlines()[0] == f"wrote 16 pairs to {out}"
    assert read(out, "SELECT split, topic_id, count(*) FROM t GROUP BY ALL ORDER BY ALL") == [
        ("test", "t2", 8),
        ("train", "t1", 8),
    ]
    # the summary: per split, per chosen model, per turn
    lines = [" ".join(line.replace("│", " ").split()) for line in output.splitlines()]
    assert "all 8 8 16" in lines
    assert "chosen A 4 4 8" in lines and "chosen C 4 4 8" in lines
    assert "turn 1 4 4 8" in lines and "turn 2 4 4 8" in lines

    code, output = pairs(
        "--db", db, "--out", out, "--min-agreement", "0.9", "--chosen-model", "A",
        "--rejected-model", "B", "--context", "transcript", "--force",
    )  # fmt: skip
    assert code == 0, output
    # unanimous debates: d1 and d2 on each topic, both won by A against B
    assert read(out, "SELECT chosen_model, rejected_model, count(*) FROM t GROUP BY ALL") == [
        ("A", "B", 4)
    ]
    # with the transcript: turn 2's instruction quotes the chosen debate's turn 1
    assert read(out, "SELECT prompt[2].content LIKE '%said in turn 1:%d2 says 1%' FROM t"
                " WHERE turn_index = 2 AND topic_id = 't1'") == [(True,)]  # fmt: skip
    jsonl = tmp_path / "pairs.jsonl"
    code, output = pairs("--db", db, "--out", jsonl, "--judge", "j1", "--max-per-key", "1")
    assert code == 0, output
    assert len(jsonl.read_text().splitlines()) == 2 * 2  # 2 keys a topic, 2 topics
    code, output = pairs("--db", db, "--out", out, "--run", "r1", "--chosen-model", "B", "--force")
    assert (code, output) == (0, f"wrote 0 pairs to {out}\n")
    assert read(out) == [(0,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chosen-model", "Z"], "no model named 'Z' in the database (models: A, B, C)"),
        (["--rejected-model", "A", "--rejected-model", "Y"], "no model named 'Y'"),
        (["--judge", "j7"], "no judge named 'j7' in the database (judges: j0, j1, j2)"),
        (["--run", "r9"], "no run named 'r9'"),
        (["--test-topics", "t1,t9"], "no topic named 't9'"),
        (["--test-topics", "t1", "--test-fraction", "0.5"], "either --test-topics or"),
        (["--test-fraction", "1.5"], "--test-fraction: Input should be less than or equal"),
        (["--min-agreement", "-0.1"], "--min-agreement: Input should be greater than or equal"),
        (["--max-per-key", "0"], "--max-per-key: Input should be greater than or equal to 1"),
        (["--memory-limit", "a lot"], "--memory-limit: 'a lot' is not a memory size"),
        (["--format", "csv"], "--format: unknown format 'csv' (parquet, jsonl or hf)"),
        (["--context", "full"], "--context: Input should be 'none' or 'transcript'"),
        (["--format", "hf", "--out", "{tmp}/taken"], "exists and is not a dataset"),
        (["--out", "{tmp}/taken"], "is a folder; give a file name"),
        (["--db", "{tmp}/none.duckdb"], "no database at"),
        (["--db", "{tmp}/taken/other.duckdb"], "is not a debate-arena database"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    with duckdb.connect(str(taken / "other.duckdb")):
        pass  # a DuckDB file without our tables
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "new" / "pairs.parquet"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, output = pairs("--db", db, "--out", out, *args)
    assert code == 2, output
    assert output.count("\n") == 1 and output.startswith("error: "), output
    assert message in output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing may be written"


def test_hf_without_datasets_names_the_extra(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    code, output = pairs("--db", db, "--out", tmp_path / "hf", "--format", "hf")
    assert code == 2
    assert output == (
        "error: --format hf needs the datasets package, which is not installed: "
        "pip install 'debate-arena[train]'\n"
    )
    assert not (tmp_path / "hf").exists()


def test_pairs_while_a_tournament_writes_to_the_file(tmp_path: Path) -> None:
    """DuckDB lets no other process open a file held for writing: the running tournament copies
    the tables the pairs need, as of one moment, and `arena pairs` works on that copy."""
    db = tmp_path / "arena.duckdb"
    models = sim_models(
        {"A": 1.0, "B": 0.3, "C": -0.3, "D": -1.0},
        judges=[
            {"name": "plain", "backend": "sim", "noise": 1.0},
            {"name": "swap", "backend": "sim", "noise": 1.0, "swap_check": True},
        ],
        turns=4,
        max_concurrency=2,
    )
    for model in models["models"]:
        model["latency_s"] = 0.15  # 2 calls at a time: about 7 s for the 96 turns
    write_yaml(tmp_path / "topics.yaml", topics(2))
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
    out = tmp_path / "out" / "pairs.jsonl"
    try:
        deadline = time.monotonic() + 60
        while True:  # until a few debates are decided (pairs need a win and a loss)
            assert run.poll() is None and time.monotonic() < deadline, "no debates decided"
            if read_live_info(db) is not None:
                decided = run_query(
                    db, "SELECT count(*) FROM debates WHERE winner IN ('FOR', 'AGAINST')"
                ).rows[0][0]
                if decided >= 6:
                    break
            time.sleep(0.1)
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(db), read_only=True)  # what `arena pairs` did before, and failed
        before = run_query(db, "SELECT count(*) FROM pairs").rows[0][0]
        code, output = pairs("--db", db, "--out", out, "--format", "jsonl")
        after = run_query(db, "SELECT count(*) FROM pairs").rows[0][0]
        assert run.poll() is None, "the tournament finished before the pairs were read"
        assert code == 0, output
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert output.splitlines()[0] == f"wrote {len(rows)} pairs to {out}"
        # the pairs of one moment between the two counts (pairs only grow as debates finish)
        assert 0 < before <= len(rows) <= after, (before, len(rows), after)
        assert list(tmp_path.glob(".arena-snapshot-*")) == []  # the snapshot is gone
        assert sorted(p.name for p in out.parent.iterdir()) == ["pairs.jsonl"]
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    # every pair is one the finished file gives too: same debates, outcomes and texts
    final = {
        (r[0], r[1], r[2], r[3]): r[4]
        for r in run_query(
            db,
            "SELECT chosen_debate_id, rejected_debate_id, turn_index, chosen_text,"
            " rejected_text FROM pairs",
        ).rows
    }
    for row in rows:
        key = (
            row["chosen_debate_id"],
            row["rejected_debate_id"],
            row["turn_index"],
            row["chosen"][0]["content"],
        )
        assert final[key] == row["rejected"][0]["content"]


def test_scratch_of_killed_runs_is_removed_by_the_next(db: Path, tmp_path: Path) -> None:
    """SIGKILL leaves scratch: a snapshot folder beside the database, a temporary output and a
    spill folder beside the output, named with the dead pid; the next `arena pairs` removes them
    (and leaves a running process's alone)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "out" / "pairs.parquet"
    out.parent.mkdir()
    stale = [
        tmp_path / f".arena-snapshot-{dead.pid}-k2j4",
        out.parent / f".arena-pairs-{dead.pid}-0a1b2c3d4e5f",
        out.parent / f".arena-tmp-{dead.pid}-0a1b2c3d4e5f-pairs.parquet",
    ]
    running = out.parent / f".arena-tmp-{os.getppid()}-0a1b2c3d4e5f-pairs.parquet"
    for folder in stale[:2]:
        folder.mkdir()
        (folder / "snapshot.duckdb").write_bytes(b"partial")
    for file in (stale[2], running):
        file.write_bytes(b"half a parquet file")
    code, output = pairs("--db", db, "--out", out)
    assert code == 0, output
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([running.name, "pairs.parquet"])
