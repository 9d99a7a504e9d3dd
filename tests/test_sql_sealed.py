"""The sealed read path: `run_query` / `arena sql` only read the database, on a file and through a
running tournament's live socket, and a reader cannot hold up, slow down or change the tournament.

- A table of write and side-effect statements (each also wrapped in EXPLAIN and EXPLAIN ANALYZE)
  is refused on a file and over the socket, and afterwards no file has been written, the database
  and the tournament's settings are unchanged.
- Each guard holds on its own: the sealed settings of a file connection refuse what a missed
  statement would do; the parse-tree check refuses what the live instance's settings allow.
- Live queries are bounded: a time limit that cancels the query, row and byte limits checked as
  the result streams (the tournament's resident memory is measured), a cancel when the client goes
  away; the tournament goes on writing throughout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from storage import ReadOnlyQueryError, Store, StoreError, run_query
from storage.live import LiveInfo, LiveServer, query_live, read_live_info
from storage.query import (
    LIVE_LIMITS,
    QueryLimitError,
    ReadLimits,
    check_read_only,
    execute_read_query,
    sealed_config,
)
from tests.conftest import arena_cmd

REPO = Path(__file__).resolve().parents[1]

TOURNAMENT = """
import datetime as dt, sys, threading, time
from storage import Store

store = Store.open(sys.argv[1])
now = dt.datetime(2026, 3, 1, 12, 0)
store.insert_rows("debates", [
    {"debate_id": f"d{i}", "run_id": "r1", "topic_id": "t1", "for_model": "alpha",
     "against_model": "beta", "replicate": i, "turns_planned": 4, "status": "done",
     "winner": "FOR", "error": None, "created_at": now, "updated_at": now}
    for i in range(3)
])
store.serve_live()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("ready", flush=True)
n = 0
while not stop.is_set():
    for _ in range(10):
        store.writer.insert("calls", {
            "call_id": f"c{n}", "request_hash": f"h{n}", "attempt": 1, "run_id": "r1",
            "purpose": "turn", "model": "alpha", "started_at": now,
        })
        n += 1
    time.sleep(0.05)
store.close()
print("done", n, flush=True)
"""


@dataclass
class Tournament:
    """A process that writes to `db` and serves live reads, as a tournament does."""

    proc: subprocess.Popen[str]
    db: Path
    info: LiveInfo

    def calls(self) -> int:
        return int(run_query(self.db, "SELECT count(*) FROM calls").rows[0][0])

    def status(self, field: str) -> int:
        """A field of /proc/<pid>/status in kB (VmRSS: resident now, VmHWM: the peak so far)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field}")

    def cpu_s(self) -> float:
        """CPU seconds the process has used so far (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def tournament(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tournament]:
    folder = tmp_path_factory.mktemp("live")
    db = folder / "arena.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", TOURNAMENT, str(db)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        info = read_live_info(db)
        assert info is not None and info.pid == proc.pid
        yield Tournament(proc, db, info)
        assert proc.poll() is None, "the tournament died while it was being read"
        assert proc.stdin is not None
        proc.stdin.close()  # ends the loop; it closes the store
        assert proc.wait(timeout=60) == 0
        done, total = proc.stdout.readline().split()
        assert done == "done" and int(total) > 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def closed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database no one holds, with three debates, and files beside it for readers to try."""
    folder = tmp_path_factory.mktemp("file")
    db = folder / "arena.duckdb"
    with Store.open(db) as store:
        store.execute(
            "INSERT INTO debates SELECT 'd' || i, 'r1', 't1', 'alpha', 'beta', i, 4, 'done',"
            " 'FOR', NULL, TIMESTAMP '2026-03-01 12:00', TIMESTAMP '2026-03-01 12:00'"
            " FROM range(3) t(i)"
        )
    _write_inputs(folder)
    return db


def _write_inputs(folder: Path) -> None:
    (folder / "in.csv").write_text("a,b\n1,2\n")
    (folder / "in.json").write_text('{"a": 1}\n')
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 1 AS a) TO '{folder / 'in.parquet'}' (FORMAT parquet)")


# --- what is refused ---------------------------------------------------------------------------

REFUSED = [
    # writes to the database
    "INSERT INTO debates (debate_id) VALUES ('x')",
    "INSERT OR REPLACE INTO debates SELECT * FROM debates",
    "UPDATE debates SET status = 'x'",
    "DELETE FROM debates",
    "TRUNCATE debates",
    "MERGE INTO debates USING debates AS s ON s.debate_id = debates.debate_id"
    " WHEN MATCHED THEN DELETE",
    "CREATE TABLE x (a INTEGER)",
    "CREATE OR REPLACE TABLE debates AS SELECT 1 AS a",
    "CREATE TEMP TABLE t AS SELECT 1 AS a",
    "CREATE VIEW v AS SELECT 1 AS a",
    "CREATE SEQUENCE s",
    "CREATE MACRO m(a) AS a + 1",
    "CREATE SCHEMA s",
    "CREATE TYPE e AS ENUM ('a')",
    "CREATE INDEX i ON debates (status)",
    "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
    "DROP TABLE debates",
    "DROP VIEW pairs",
    "ALTER TABLE debates ADD COLUMN x INTEGER",
    "ALTER TABLE debates RENAME TO gone",
    "COMMENT ON TABLE debates IS 'x'",
    "PIVOT debates ON status",
    # settings, the writer's above all
    "SET threads = 1",
    "SET memory_limit = '8MB'",
    "SET GLOBAL enable_external_access = false",
    "SET VARIABLE x = 1",
    "RESET threads",
    "PRAGMA table_info('debates')",
    "PRAGMA memory_limit = '8MB'",
    "PRAGMA enable_profiling",
    # extensions
    "INSTALL httpfs",
    "FORCE INSTALL httpfs",
    "LOAD httpfs",
    "UPDATE EXTENSIONS",
    # other databases and files
    "ATTACH '{dir}/other.duckdb' AS other",
    "DETACH other",
    "USE memory",
    "COPY debates TO '{dir}/out.csv'",
    "COPY debates TO '{dir}/out.parquet' (FORMAT parquet)",
    "COPY (SELECT 1 AS a) TO '{dir}/q.json'",
    "COPY debates FROM '{dir}/in.csv'",
    "COPY FROM DATABASE arena TO memory",
    "EXPORT DATABASE '{dir}/export'",
    "IMPORT DATABASE '{dir}/export'",
    # storage maintenance and state
    "CHECKPOINT",
    "FORCE CHECKPOINT",
    "VACUUM",
    "ANALYZE",
    "CALL checkpoint()",
    "CALL force_checkpoint()",
    "CALL enable_logging()",
    "CALL pragma_table_info('debates')",
    "BEGIN TRANSACTION",
    "COMMIT",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    # queries that reach outside the database or change state
    "SELECT * FROM read_csv('{dir}/in.csv')",
    "SELECT * FROM read_parquet('{dir}/in.parquet')",
    "SELECT * FROM read_json('{dir}/in.json')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('{dir}/in.csv')",
    "SELECT * FROM glob('{dir}/*')",
    "SELECT * FROM sniff_csv('{dir}/in.csv')",
    "SELECT * FROM parquet_metadata('{dir}/in.parquet')",
    "FROM '{dir}/in.csv'",
    "SELECT count(*) FROM '{dir}/in.parquet'",
    "DESCRIBE '{dir}/in.csv'",
    "SUMMARIZE read_csv('{dir}/in.csv')",
    "WITH t AS (SELECT * FROM read_csv('{dir}/in.csv')) SELECT * FROM t",
    "SELECT * FROM (WITH x AS (SELECT 1) FROM x), '{dir}/in.csv'",
    "SELECT (SELECT count(*) FROM glob('{dir}/*')) AS n",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM query_table('debates')",
    "SELECT * FROM checkpoint()",
    "SELECT * FROM force_checkpoint()",
    "SELECT * FROM enable_logging()",
    "SELECT * FROM histogram(debates, status)",
    "SELECT nextval('s')",
    "SELECT write_log('x')",
    "SELECT 1; DELETE FROM debates",
]

ALLOWED = [
    "SELECT 1 AS one",
    "SELECT count(*) FROM debates",
    "WITH won AS (SELECT * FROM debates WHERE winner = 'FOR') SELECT count(*) FROM won",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) FROM n",
    "FROM debates SELECT status, count(*) GROUP BY ALL",
    "VALUES (1, 'a'), (2, 'b')",
    "DESCRIBE debates",
    "DESCRIBE SELECT * FROM debates",
    "SHOW TABLES",
    "SHOW ALL TABLES",
    "SHOW debates",
    "SUMMARIZE debates",
    "SELECT * FROM pairs LIMIT 1",
    "SELECT count(*) FROM information_schema.tables",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM pragma_table_info('debates')",
    "SELECT * FROM range(3) t(i), unnest([1, 2])",
    "FROM debates PIVOT (count(*) FOR status IN ('done'))",
    "UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME k VALUE v",
    "EXPLAIN SELECT count(*) FROM debates",
    "EXPLAIN ANALYZE SELECT count(*) FROM debates",
    "EXPLAIN (FORMAT json) WITH x AS (SELECT 1) SELECT * FROM x",
    "EXPLAIN (SELECT 1)",
    "/* a comment */ SELECT 1; -- and another\n SELECT 2",
]


def _wrapped(statement: str) -> list[str]:
    return [statement, f"EXPLAIN {statement}", f"EXPLAIN ANALYZE {statement}"]


def _parses(sql: str) -> bool:
    with duckdb.connect() as con:
        try:
            con.extract_statements(sql)
        except duckdb.Error:
            return False
    return True


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` but the database's own (which a live writer keeps changing)."""
    own = {"arena.duckdb", "arena.duckdb.wal", "arena.duckdb.live.json"}
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.name not in own
    }


def _extension_dirs() -> set[str]:
    home = Path.home() / ".duckdb"
    return {str(p) for p in home.rglob("*")} if home.exists() else set()


def test_the_refusal_table_is_big_enough() -> None:
    assert len(REFUSED) >= 40 and len(set(REFUSED)) == len(REFUSED)


@pytest.mark.parametrize("where", ["file", "live"])
def test_writes_and_side_effects_are_refused_and_nothing_is_written(
    where: str, closed_db: Path, tournament: Tournament
) -> None:
    db = closed_db if where == "file" else tournament.db
    folder = db.parent
    if where == "live":
        _write_inputs(folder)
    settings = "SELECT current_setting('threads'), current_setting('memory_limit')"
    before = (_files(folder), _extension_dirs(), run_query(db, settings).rows)
    debates = run_query(db, "SELECT * FROM debates ORDER BY debate_id").rows
    problems: list[str] = []
    refusals = 0
    for template in REFUSED:
        for sql in _wrapped(template.replace("{dir}", str(folder))):
            expected = ReadOnlyQueryError if _parses(sql) else StoreError
            try:
                if where == "live":
                    query_live(tournament.info, sql)  # straight to the server: it checks alone
                else:
                    run_query(db, sql)
            except expected as exc:
                refusals += 1
                if "\n" in str(exc):
                    problems.append(f"{sql!r}: a message of several lines")
                if expected is StoreError and "Parser Error" not in str(exc):
                    problems.append(f"{sql!r}: {exc}")
            except Exception as exc:
                problems.append(f"{sql!r}: {type(exc).__name__}: {exc}")
            else:
                problems.append(f"{sql!r} was not refused")
    assert problems == []
    assert refusals == 3 * len(REFUSED)
    after = (_files(folder), _extension_dirs(), run_query(db, settings).rows)
    assert after == before  # no file written, no extension installed, no setting changed
    assert run_query(db, "SELECT * FROM debates ORDER BY debate_id").rows == debates
    if where == "live":
        assert tournament.proc.poll() is None


@pytest.mark.parametrize("where", ["file", "live"])
def test_plain_queries_ctes_and_describe_still_answer(
    where: str, closed_db: Path, tournament: Tournament
) -> None:
    db = closed_db if where == "file" else tournament.db
    for sql in ALLOWED:
        result = query_live(tournament.info, sql) if where == "live" else run_query(db, sql)
        assert result.columns, sql
    assert run_query(db, "DESCRIBE debates").rows[0][:2] == ("debate_id", "VARCHAR")
    assert run_query(db, "SELECT count(*) FROM debates WHERE status = ?", ["done"]).rows == [(3,)]
    assert run_query(
        db,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
        " WHERE i < 3) SELECT sum(i) FROM n",
    ).rows == [(6,)]


def test_explain_is_classified_by_what_it_explains() -> None:
    with duckdb.connect() as con:
        [statement] = check_read_only(con, "EXPLAIN ANALYZE (FORMAT json) (SELECT 1)")
        assert statement.reads == ("(SELECT 1)",)
        for sql, kind in [
            ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.parquet'", "EXPLAIN COPY"),
            ("explain /* c */ analyse -- c\n SET threads = 1", "EXPLAIN SET"),
            ("EXPLAIN (ANALYZE, FORMAT json) INSERT INTO t VALUES (1)", "EXPLAIN INSERT"),
            ("EXPLAIN ANALYZE INSTALL httpfs", "EXPLAIN LOAD"),
            ("EXPLAIN ANALYZE CHECKPOINT", "EXPLAIN CALL"),
            ("EXPLAIN ANALYZE RESET threads", "EXPLAIN SET"),
        ]:
            with pytest.raises(ReadOnlyQueryError, match=f"not {kind}$"):
                check_read_only(con, sql)


# --- each guard on its own ----------------------------------------------------------------------


def test_the_sealed_settings_refuse_what_a_missed_statement_would_do(closed_db: Path) -> None:
    """Straight on a connection with `sealed_config`, with no statement or source check: DuckDB
    itself refuses every write, file access, extension install and setting."""
    folder = closed_db.parent
    before = (_files(folder), _extension_dirs())
    database_written = closed_db.stat().st_mtime_ns
    con = duckdb.connect(str(closed_db), read_only=True, config=sealed_config())
    try:
        for sql in [
            f"COPY debates TO '{folder}/out.csv'",
            f"EXPLAIN ANALYZE COPY debates TO '{folder}/out.parquet' (FORMAT parquet)",
            f"EXPORT DATABASE '{folder}/export'",
            f"ATTACH '{folder}/other.duckdb' AS other",
            f"SELECT * FROM read_csv('{folder}/in.csv')",
            f"FROM '{folder}/in.parquet'",
            f"SELECT * FROM glob('{folder}/*')",
            "INSTALL httpfs",
            "LOAD httpfs",
            "EXPLAIN ANALYZE SET threads = 1",
            "SET memory_limit = '8MB'",
            "SELECT * FROM enable_logging()",
            "DELETE FROM debates",
            "SELECT 1::INET",  # an extension's type: no autoload, no autoinstall
        ]:
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        con.execute("CHECKPOINT")  # a no-op on a file opened read-only
    finally:
        con.close()
    assert (_files(folder), _extension_dirs()) == before
    assert closed_db.stat().st_mtime_ns == database_written
    # files are readable only where the caller asks
    assert run_query(closed_db, f"FROM '{folder}/in.csv'", allow_files=True).rows == [(1, 2)]
    with pytest.raises(ReadOnlyQueryError, match="not COPY"):
        run_query(closed_db, f"COPY debates TO '{folder}/out.csv'", allow_files=True)
    assert _files(folder) == before[0]


def test_the_source_check_refuses_what_the_live_instance_would_allow(tmp_path: Path) -> None:
    """A tournament's instance keeps external access (its snapshots need it): on it, the parse-tree
    check is what stops a query reading a file; the read-only transaction stops writes."""
    _write_inputs(tmp_path)
    with Store.open(tmp_path / "arena.duckdb") as store:
        store.serve_live()
        assert store.read("SELECT current_setting('enable_external_access')") == [(True,)]
        extensions = (
            "SELECT current_setting('autoinstall_known_extensions'),"
            " current_setting('autoload_known_extensions')"
        )
        assert store.read(extensions) == [(False, False)]
        for sql in [
            f"SELECT * FROM read_csv('{tmp_path}/in.csv')",
            f"FROM '{tmp_path}/in.csv'",
            f"SELECT * FROM (SELECT * FROM read_parquet('{tmp_path}/in.parquet'))",
        ]:
            assert store.read(sql)  # the writer's own connection could read it
            with pytest.raises(ReadOnlyQueryError, match="reading files"):
                run_query(tmp_path / "arena.duckdb", sql, allow_files=True)  # a reader cannot
    # what a missed statement would meet there: DuckDB's read-only transaction
    with duckdb.connect(str(tmp_path / "other.duckdb")) as con, con.cursor() as cursor:
        cursor.execute("CREATE TABLE t (a INTEGER)")
        for sql in ["INSERT INTO t VALUES (1)", "CREATE TABLE u (a INTEGER)", "DROP TABLE t"]:
            cursor.execute("BEGIN TRANSACTION READ ONLY")
            with pytest.raises(duckdb.Error, match="read-only"):
                cursor.execute(sql)
            cursor.execute("ROLLBACK")


# --- limits -------------------------------------------------------------------------------------

LONG = "SELECT count(*) FROM range(1000000000000)"
"""A query that runs for minutes on little memory."""
HUGE = "SELECT count(*) FROM range(1000000000) a, range(1000000000) b"
"""A cross join of range(1e9): it builds its right side (8 GB) in memory, at ~0.5 GB/s here."""


class RssSampler:
    """Samples a process's VmRSS every 10 ms in a thread; `peak` is the largest seen (kB)."""

    def __init__(self, tournament: Tournament) -> None:
        self.tournament = tournament
        self.peak = tournament.status("VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.tournament.status("VmRSS"))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_live_query_past_its_time_limit_is_cancelled(tournament: Tournament) -> None:
    before = tournament.calls()
    for query, limit in [(LONG, 2.0), (HUGE, 0.3)]:  # the cross join, before its memory budget
        started = time.monotonic()
        with pytest.raises(QueryLimitError, match=f"time limit of {limit:g} s and was cancelled"):
            query_live(tournament.info, query, limits=ReadLimits(timeout_s=limit))
        took = time.monotonic() - started
        assert took < limit + 5, took
    time.sleep(0.5)
    assert tournament.proc.poll() is None
    assert tournament.calls() > before  # it went on writing meanwhile, and still does


def test_the_server_limits_win_over_a_client_asking_for_more(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    server = LiveServer(tmp_path / "x.duckdb", con, limits=ReadLimits(1.0, 10, 1000))
    try:
        info = read_live_info(tmp_path / "x.duckdb")
        assert info is not None
        generous = ReadLimits(600, 10**9, 10**12)
        with pytest.raises(QueryLimitError, match="more than 10 rows"):
            query_live(info, "FROM range(11)", limits=generous)
        assert len(query_live(info, "FROM range(10)", limits=generous).rows) == 10
        with pytest.raises(QueryLimitError, match="over 1,000 bytes as JSON"):
            query_live(info, "SELECT repeat('x', 2000)", limits=generous)
        with pytest.raises(QueryLimitError, match="time limit of 1 s"):
            query_live(info, LONG, limits=generous)
    finally:
        server.stop()
        con.close()


def test_the_default_limits_are_stated() -> None:
    assert ReadLimits(60.0, 100_000, 64 * 2**20) == LIVE_LIMITS
    assert ReadLimits(5, None, 100).tighter(ReadLimits(None, 7, 1000)) == ReadLimits(5, 7, 100)
    assert ReadLimits.from_json(LIVE_LIMITS.to_json()) == LIVE_LIMITS
    for bad in [{"max_rows": -1}, {"timeout_s": "1"}, {"other": 1}, [1]]:
        with pytest.raises(TypeError):
            ReadLimits.from_json(bad)


def test_a_huge_result_stays_out_of_the_tournaments_memory(tournament: Tournament) -> None:
    """A result of ~10 GB, and one of a billion rows: refused at the limits, as they stream."""
    rss_before = tournament.status("VmRSS")
    started = time.monotonic()
    with RssSampler(tournament) as rss:
        with pytest.raises(QueryLimitError, match="over 64 MiB as JSON"):
            query_live(tournament.info, "SELECT range, repeat('x', 1000) AS s FROM range(10000000)")
        with pytest.raises(QueryLimitError, match="more than 100,000 rows"):
            query_live(tournament.info, "SELECT * FROM range(1000000000)")
    took = time.monotonic() - started
    time.sleep(0.5)
    rss_after = tournament.status("VmRSS")
    report = (
        f"huge results: tournament RSS {rss_before // 1024} MiB before, peak"
        f" {rss.peak // 1024} MiB, {rss_after // 1024} MiB after; {took:.1f} s"
    )
    print(report)
    assert rss.peak - rss_before < 300 * 1024, report  # one capped result, not the whole of it
    assert rss_after - rss_before < 150 * 1024, report
    assert tournament.proc.poll() is None


def test_a_query_that_needs_gigabytes_is_cancelled_at_its_memory_budget(
    tournament: Tournament,
) -> None:
    """The cross join would take 8 GB of the tournament's buffer pool; it is stopped at 512 MiB."""
    before = tournament.calls()
    rss_before = tournament.status("VmRSS")
    started = time.monotonic()
    budget = "more than 512 MiB of the running tournament"
    with RssSampler(tournament) as rss, pytest.raises(QueryLimitError, match=budget):
        query_live(tournament.info, HUGE)
    took = time.monotonic() - started
    released = time.monotonic()
    while (rss_after := tournament.status("VmRSS")) - rss_before > 150 * 1024:
        if time.monotonic() - released > 10:
            break
        time.sleep(0.1)
    released = time.monotonic() - released
    report = (
        f"cross join: tournament RSS {rss_before // 1024} MiB before, peak"
        f" {rss.peak // 1024} MiB, cancelled after {took:.1f} s; {rss_after // 1024} MiB"
        f" {released:.1f} s later"
    )
    print(report)
    assert rss.peak - rss_before < (512 + 256) * 1024, report
    assert rss_after - rss_before < 150 * 1024, report
    assert tournament.proc.poll() is None
    assert tournament.calls() > before


def as_in_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it, in the client: a pytest started as a background job of
    a script has SIGINT ignored, and its children would inherit that (and never see the signal)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_query_is_cancelled_when_its_client_goes_away(tournament: Tournament) -> None:
    """`arena sql` interrupted with Ctrl-C: the tournament stops working on its query at once."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    client = subprocess.Popen(
        arena_cmd("sql", LONG, "--db", tournament.db, "--timeout", "120"),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    busy = 0.0
    deadline = time.monotonic() + 30
    while busy < 0.3 and time.monotonic() < deadline:  # until the tournament runs the query
        busy_from = tournament.cpu_s()
        time.sleep(0.5)
        busy = (tournament.cpu_s() - busy_from) / 0.5
    client.send_signal(signal.SIGINT)
    _out, err = client.communicate(timeout=30)
    assert client.returncode == 130, err
    assert err.strip() == "error: interrupted: the query was cancelled"
    time.sleep(1)  # the server's watchdog polls every 0.1 s
    idle_from = tournament.cpu_s()
    time.sleep(2)
    idle = (tournament.cpu_s() - idle_from) / 2
    print(f"tournament CPU: {busy:.2f} s/s while the query ran, {idle:.2f} s/s after Ctrl-C")
    assert busy >= 0.3, busy  # the query was running in the tournament
    assert idle < 0.2, idle  # and is no longer
    assert tournament.proc.poll() is None


def test_ctrl_c_cancels_a_query_on_a_file_at_once(closed_db: Path) -> None:
    client = subprocess.Popen(
        arena_cmd("sql", LONG, "--db", closed_db),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    time.sleep(4)  # started, and deep in the query
    interrupted = time.monotonic()
    client.send_signal(signal.SIGINT)
    _out, err = client.communicate(timeout=30)
    assert client.returncode == 130, err
    assert err.strip() == "error: interrupted: the query was cancelled"
    assert time.monotonic() - interrupted < 3


# --- arena sql ----------------------------------------------------------------------------------


def _arena_sql(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        arena_cmd("sql", *args),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def test_arena_sql_refusals_and_limits_are_one_line(
    closed_db: Path, tournament: Tournament
) -> None:
    folder = closed_db.parent
    csv = folder / "in.csv"
    for args, message in [
        (
            (f"EXPLAIN ANALYZE COPY debates TO '{folder}/x.parquet'", "--db", closed_db),
            "not EXPLAIN COPY",
        ),
        ((f"FROM '{csv}'", "--db", closed_db), "reading files"),
        ((f"FROM '{csv}'", "--db", tournament.db, "--allow-files"), "reading files"),
        (("FROM range(100)", "--db", closed_db, "--max-rows", "10"), "more than 10 rows"),
        ((LONG, "--db", tournament.db, "--timeout", "1"), "time limit of 1 s"),
        (("SET memory_limit = '8MB'", "--db", tournament.db), "not SET"),
    ]:
        result = _arena_sql(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    read = _arena_sql(f"FROM '{csv}'", "--db", closed_db, "--allow-files", "-f", "json")
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == [{"a": 1, "b": 2}]
    assert not (folder / "x.parquet").exists()


def test_several_clients_at_once_share_the_slots(tournament: Tournament) -> None:
    results: list[object] = []
    lock = threading.Lock()

    def ask() -> None:
        value = query_live(tournament.info, "SELECT count(*) > 0 FROM calls").rows
        with lock:
            results.append(value)

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [[(True,)]] * 12


def test_execute_read_query_keeps_its_old_signature(closed_db: Path) -> None:
    con = duckdb.connect(str(closed_db), read_only=True, config=sealed_config())
    try:
        result = execute_read_query(con, "SELECT count(*) AS n FROM debates")
        assert (result.columns, result.rows) == (["n"], [(3,)])
    finally:
        con.close()
