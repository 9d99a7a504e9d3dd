"""Cross-process tests: live SQL and bulk reads while another process writes, and durability under
kill -9.

Each test starts a real Python subprocess that uses the storage API the way a tournament does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from storage import ReadOnlyQueryError, Store, StoreError, read_connection, run_query
from storage.live import live_info_path, query_live, read_live_info

REPO = Path(__file__).resolve().parents[1]

TOURNAMENT = """
import datetime as dt, sys, time
from storage import Store

store = Store.open(sys.argv[1])
store.serve_live()
print("ready", flush=True)
n = 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for _ in range(25):
        store.writer.insert("calls", {
            "call_id": f"c{n}", "request_hash": f"h{n}", "attempt": 1, "run_id": "r1",
            "purpose": "turn", "model": "alpha", "started_at": now,
        })
        n += 1
    time.sleep(0.02)
store.close()
print("done", n, flush=True)
"""


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_live_queries_while_another_process_writes(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    proc = start(TOURNAMENT, str(db), "4")
    try:
        assert read_line(proc) == "ready"
        info = read_live_info(db)
        assert info is not None and info.pid == proc.pid
        with pytest.raises(duckdb.IOException, match="lock"):  # why the live server exists
            duckdb.connect(str(db), read_only=True)

        counts: list[int] = []
        lags: list[float] = []
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            asked = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            result = run_query(db, "SELECT count(*) AS n, max(started_at) AS newest FROM calls")
            assert result.columns == ["n", "newest"]
            [(count, newest)] = result.rows
            counts.append(count)
            if newest is not None:
                lags.append((asked - dt.datetime.fromisoformat(newest)).total_seconds())
            time.sleep(0.1)
        assert counts == sorted(counts)
        assert len(set(counts)) >= 5, counts  # the count grows while we watch
        assert lags and max(lags) < 1.5, lags  # and what we see is at most ~a second old

        for sql in [
            "INSERT INTO calls (call_id) VALUES ('x')",
            "CREATE TABLE x (a INTEGER)",
            f"COPY calls TO '{tmp_path / 'out.csv'}'",
            f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        ]:
            with pytest.raises(ReadOnlyQueryError):
                run_query(db, sql)
            with pytest.raises(ReadOnlyQueryError):
                query_live(info, sql)  # the server refuses it on its own, too
        with pytest.raises(ReadOnlyQueryError, match="not EXPLAIN INSERT"):
            run_query(db, "EXPLAIN ANALYZE INSERT INTO calls SELECT * FROM calls LIMIT 1")
        assert not (tmp_path / "out.csv").exists()
        assert not (tmp_path / "other.duckdb").exists()
        with pytest.raises(StoreError, match="Catalog Error") as bad:
            run_query(db, "SELECT * FROM nowhere")
        assert "\n" not in str(bad.value)

        with ThreadPoolExecutor(max_workers=8) as pool:  # several clients at once
            results = list(
                pool.map(lambda _: run_query(db, "SELECT count(*) FROM calls"), range(16))
            )
        assert all(r.rows[0][0] >= counts[-1] for r in results)

        # parameters cross the socket as JSON values, bound by the server's DuckDB
        [(alpha, beta)] = run_query(
            db,
            "SELECT count(*) FILTER (model = ?), count(*) FILTER (model = ?) FROM calls",
            ["alpha", "x' OR 'a' = 'a"],
        ).rows
        assert alpha >= counts[-1] and beta == 0

        assert proc.wait(timeout=30) == 0
        done, total = read_line(proc).split()
        assert done == "done" and int(total) > counts[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the tournament is over: its live file and socket are gone and the file is read directly
    assert not live_info_path(db).exists()
    assert not Path(info.socket).exists()
    assert run_query(db, "SELECT count(*) FROM calls").rows == [(int(total),)]


PAIRED_WRITES = """
import datetime as dt, sys, time
from storage import Store

store = Store.open(sys.argv[1])
store.serve_live()
print("ready", flush=True)
n = 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # a call and a debate in one transaction: a consistent reader sees as many of each
    store.execute("BEGIN TRANSACTION")
    store.execute(
        "INSERT INTO calls (call_id, request_hash, attempt, run_id, purpose, model, started_at)"
        " VALUES (?, 'h', 1, 'r1', 'turn', 'alpha', ?)", [f"c{n}", now])
    store.execute(
        "INSERT INTO debates VALUES (?, 'r1', 't1', 'a', 'b', 1, 2, 'done', 'FOR', NULL, ?, ?)",
        [f"d{n}", now, now])
    store.execute("COMMIT")
    n += 1
    time.sleep(0.002)
store.close()
print("done", n, flush=True)
"""


def test_bulk_reads_see_one_moment_while_another_process_writes(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    proc = start(PAIRED_WRITES, str(db), "4")
    try:
        assert read_line(proc) == "ready"
        seen: list[int] = []
        for _ in range(5):
            before = run_query(db, "SELECT count(*) FROM calls").rows[0][0]
            with read_connection(db, tables=["calls", "debates"]) as con:
                [folder] = tmp_path.glob(".arena-snapshot-*")  # beside the database
                calls, debates = con.execute(
                    "SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM debates)"
                ).fetchall()[0]
                out = tmp_path / f"calls-{len(seen)}.parquet"
                con.execute(f"COPY calls TO '{out}' (FORMAT parquet)")  # the bulk read
            after = run_query(db, "SELECT count(*) FROM calls").rows[0][0]
            assert calls == debates, (calls, debates)  # one moment across tables
            assert before <= calls <= after
            assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchall() == [(calls,)]
            assert not folder.exists()  # the snapshot is gone with the connection
            seen.append(calls)
            time.sleep(0.2)
        assert seen == sorted(seen) and len(set(seen)) >= 3, seen
        assert proc.wait(timeout=30) == 0
        done, total = read_line(proc).split()
        assert done == "done" and int(total) > seen[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("calls-")) == [
        "arena.duckdb"
    ]
    with read_connection(db) as con:  # finished: the file itself
        assert con.execute("SELECT count(*) FROM calls").fetchall() == [(int(total),)]


KILLED = """
import sys, time
from storage import Store

def call(i, model):
    return {"call_id": f"c{i}", "request_hash": f"h{i}", "attempt": 1, "run_id": "r1",
            "purpose": "turn", "model": model, "started_at": "2026-03-01 12:00:00"}

store = Store.open(sys.argv[1])
store.serve_live()
for i in range(1000):
    store.writer.insert("calls", call(i, "first"))
store.writer.flush()
for i in range(1000, 3000):
    store.writer.insert("calls", call(i, "second"))
for i in range(0, 1000, 10):
    store.writer.insert("calls", call(i, "updated"), on_conflict="update")
print("enqueued", flush=True)
time.sleep(60)
"""


def test_kill_9_loses_nothing_enqueued_a_second_before(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    proc = start(KILLED, str(db))
    try:
        assert read_line(proc) == "enqueued"
        time.sleep(1.2)  # the contract: committed within a second of being enqueued
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stale = json.loads(live_info_path(db).read_text())
    assert stale["pid"] == proc.pid  # left behind by the kill, and ignored as stale:
    assert Path(stale["socket"]).exists()
    counts = "SELECT model, count(*) FROM calls GROUP BY model ORDER BY model"
    expected = [("first", 900), ("second", 2000), ("updated", 100)]
    assert run_query(db, counts).rows == expected
    with Store.open(db) as store:  # the lock died with the process
        assert store.read(counts) == expected
        assert not Path(stale["socket"]).exists()  # opening cleared what the kill left
        assert not live_info_path(db).exists()
