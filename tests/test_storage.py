"""Tests for storage/: migrations and the exact schema, the writer, the store, run_query.

Cross-process live reads and kill -9 durability are in test_live_sql.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from storage import (
    Migration,
    QueryResult,
    ReadOnlyQueryError,
    Store,
    StoreBusyError,
    StoreError,
    WriteError,
    apply_migrations,
    load_migrations,
    pending_views,
    read_connection,
    run_query,
)
from storage.live import live_info_path, query_live, read_live_info, snapshot_live
from storage.query import json_safe
from storage.schema import TableInfo, read_tables
from storage.writer import plan_chunks, prepare_row

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 3, 1, 12, 0, 0)

EXPECTED_SCHEMA: dict[str, list[tuple[str, str]]] = {
    "bbq_answers": [  # a view (0004_bbq.sql)
        ("run_id", "VARCHAR"),
        ("model", "VARCHAR"),
        ("item_id", "VARCHAR"),
        ("sample", "INTEGER"),
        ("category", "VARCHAR"),
        ("question_index", "VARCHAR"),
        ("example_id", "INTEGER"),
        ("context_condition", "VARCHAR"),
        ("question_polarity", "VARCHAR"),
        ("split", "VARCHAR"),
        ("answer", "VARCHAR"),
        ("gold_letter", "VARCHAR"),
        ("unknown_letter", "VARCHAR"),
        ("biased_letter", "VARCHAR"),
        ("correct", "BOOLEAN"),
        ("unknown", "BOOLEAN"),
        ("biased", "BOOLEAN"),
        ("unparseable", "BOOLEAN"),
        ("p_a", "DOUBLE"),
        ("p_b", "DOUBLE"),
        ("p_c", "DOUBLE"),
        ("raw_text", "VARCHAR"),
        ("response_id", "VARCHAR"),
    ],
    "bbq_items": [
        ("run_id", "VARCHAR"),
        ("item_id", "VARCHAR"),
        ("category", "VARCHAR"),
        ("question_index", "VARCHAR"),
        ("example_id", "INTEGER"),
        ("context_condition", "VARCHAR"),
        ("question_polarity", "VARCHAR"),
        ("context", "VARCHAR"),
        ("question", "VARCHAR"),
        ("option_a", "VARCHAR"),
        ("option_b", "VARCHAR"),
        ("option_c", "VARCHAR"),
        ("gold_letter", "VARCHAR"),
        ("unknown_letter", "VARCHAR"),
        ("biased_letter", "VARCHAR"),
        ("split", "VARCHAR"),
        ("split_seed", "BIGINT"),
        ("dev_fraction", "DOUBLE"),
    ],
    "bbq_responses": [
        ("response_id", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("model", "VARCHAR"),
        ("item_id", "VARCHAR"),
        ("sample", "INTEGER"),
        ("raw_text", "VARCHAR"),
        ("reasoning", "VARCHAR"),
        ("answer", "VARCHAR"),
        ("p_a", "DOUBLE"),
        ("p_b", "DOUBLE"),
        ("p_c", "DOUBLE"),
        ("prompt_tokens", "INTEGER"),
        ("completion_tokens", "INTEGER"),
        ("cost_usd", "DOUBLE"),
        ("latency_s", "DOUBLE"),
        ("finish_reason", "VARCHAR"),
        ("call_id", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ],
    "calls": [
        ("call_id", "VARCHAR"),
        ("request_hash", "VARCHAR"),
        ("attempt", "INTEGER"),
        ("run_id", "VARCHAR"),
        ("debate_id", "VARCHAR"),
        ("purpose", "VARCHAR"),
        ("model", "VARCHAR"),
        ("prompt_tokens", "INTEGER"),
        ("completion_tokens", "INTEGER"),
        ("cost_usd", "DOUBLE"),
        ("latency_s", "DOUBLE"),
        ("finish_reason", "VARCHAR"),
        ("error", "VARCHAR"),
        ("error_kind", "VARCHAR"),
        ("retryable", "BOOLEAN"),
        ("started_at", "TIMESTAMP"),
    ],
    "debates": [
        ("debate_id", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("topic_id", "VARCHAR"),
        ("for_model", "VARCHAR"),
        ("against_model", "VARCHAR"),
        ("replicate", "INTEGER"),
        ("turns_planned", "INTEGER"),
        ("status", "VARCHAR"),
        ("winner", "VARCHAR"),
        ("error", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
    ],
    "models": [
        ("run_id", "VARCHAR"),
        ("role", "VARCHAR"),
        ("name", "VARCHAR"),
        ("backend", "VARCHAR"),
        ("model", "VARCHAR"),
        ("params", "JSON"),
        ("spec", "JSON"),
    ],
    "runs": [
        ("run_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("seed", "BIGINT"),
        ("turns", "INTEGER"),
        ("replicates", "INTEGER"),
        ("max_tokens", "INTEGER"),
        ("config", "JSON"),
        ("command", "VARCHAR"),
        ("arena_version", "VARCHAR"),
    ],
    "pairs": [  # a view (0002_pairs_view.sql)
        ("topic_id", "VARCHAR"),
        ("side", "VARCHAR"),
        ("turn_index", "INTEGER"),
        ("role", "VARCHAR"),
        ("motion", "VARCHAR"),
        ("turns", "INTEGER"),
        ("max_tokens", "INTEGER"),
        ("chosen_model", "VARCHAR"),
        ("rejected_model", "VARCHAR"),
        ("chosen_debate_id", "VARCHAR"),
        ("rejected_debate_id", "VARCHAR"),
        ("chosen_run_id", "VARCHAR"),
        ("rejected_run_id", "VARCHAR"),
        ("chosen_text", "VARCHAR"),
        ("rejected_text", "VARCHAR"),
    ],
    "schema_migrations": [
        ("version", "INTEGER"),
        ("name", "VARCHAR"),
        ("applied_at", "TIMESTAMP"),
    ],
    "topics": [
        ("run_id", "VARCHAR"),
        ("topic_id", "VARCHAR"),
        ("motion", "VARCHAR"),
        ("category", "VARCHAR"),
        ("tags", "VARCHAR[]"),
    ],
    "turns": [
        ("debate_id", "VARCHAR"),
        ("turn_index", "INTEGER"),
        ("side", "VARCHAR"),
        ("role", "VARCHAR"),
        ("model", "VARCHAR"),
        ("text", "VARCHAR"),
        ("raw_text", "VARCHAR"),
        ("reasoning", "VARCHAR"),
        ("prompt_tokens", "INTEGER"),
        ("completion_tokens", "INTEGER"),
        ("cost_usd", "DOUBLE"),
        ("latency_s", "DOUBLE"),
        ("finish_reason", "VARCHAR"),
        ("call_id", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ],
    "verdicts": [  # rebuilt by 0003_verdict_variants.sql
        ("debate_id", "VARCHAR"),
        ("judge", "VARCHAR"),
        ("variant", "VARCHAR"),
        ("counts", "BOOLEAN"),
        ("winner", "VARCHAR"),
        ("rationale", "VARCHAR"),
        ("valid", "BOOLEAN"),
        ("repaired", "BOOLEAN"),
        ("raw_text", "VARCHAR"),
        ("prob_for", "DOUBLE"),
        ("prompt_tokens", "INTEGER"),
        ("completion_tokens", "INTEGER"),
        ("cost_usd", "DOUBLE"),
        ("latency_s", "DOUBLE"),
        ("created_at", "TIMESTAMP"),
    ],
    "pcp_judgments": [  # 0005_pcp.sql
        ("judgment_id", "VARCHAR"),
        ("unit_id", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("model", "VARCHAR"),
        ("pair_id", "VARCHAR"),
        ("sample", "INTEGER"),
        ("judge", "VARCHAR"),
        ("measure", "VARCHAR"),
        ("variant", "VARCHAR"),
        ("score", "DOUBLE"),
        ("favoured", "VARCHAR"),
        ("score2", "DOUBLE"),
        ("readable", "BOOLEAN"),
        ("repaired", "BOOLEAN"),
        ("raw_text", "VARCHAR"),
        ("call_id", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ],
    "pcp_pairs": [
        ("run_id", "VARCHAR"),
        ("pair_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("prompt_a", "VARCHAR"),
        ("prompt_b", "VARCHAR"),
        ("label_a", "VARCHAR"),
        ("label_b", "VARCHAR"),
        ("topic_a", "VARCHAR"),
        ("topic_b", "VARCHAR"),
        ("template", "VARCHAR"),
        ("valence", "VARCHAR"),
        ("masked", "VARCHAR"),
        ("meta", "JSON"),
    ],
    "pcp_responses": [
        ("response_id", "VARCHAR"),
        ("unit_id", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("model", "VARCHAR"),
        ("pair_id", "VARCHAR"),
        ("sample", "INTEGER"),
        ("side", "VARCHAR"),
        ("raw_text", "VARCHAR"),
        ("reasoning", "VARCHAR"),
        ("prompt_tokens", "INTEGER"),
        ("completion_tokens", "INTEGER"),
        ("cost_usd", "DOUBLE"),
        ("latency_s", "DOUBLE"),
        ("finish_reason", "VARCHAR"),
        ("call_id", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ],
    "pcp_train_steps": [  # 0006_pcp_train.sql
        ("run_id", "VARCHAR"),
        ("topic_id", "VARCHAR"),
        ("topic", "VARCHAR"),
        ("step", "VARCHAR"),
        ("model", "VARCHAR"),
        ("raw_text", "VARCHAR"),
        ("value", "JSON"),
        ("problem", "VARCHAR"),
        ("repaired", "BOOLEAN"),
        ("finish_reason", "VARCHAR"),
        ("call_id", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ],
    "pcp_train_topics": [  # a view
        ("run_id", "VARCHAR"),
        ("topic_id", "VARCHAR"),
        ("topic", "VARCHAR"),
        ("kept", "BOOLEAN"),
        ("left_view", "VARCHAR"),
        ("right_view", "VARCHAR"),
        ("left_anchor", "VARCHAR"),
        ("right_anchor", "VARCHAR"),
        ("left_good", "VARCHAR"),
        ("left_bad", "VARCHAR"),
        ("right_good", "VARCHAR"),
        ("right_bad", "VARCHAR"),
        ("model", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
    ],
    "training_runs": [  # 0007_training.sql
        ("run_id", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("base", "VARCHAR"),
        ("output_dir", "VARCHAR"),
        ("status", "VARCHAR"),
        ("stop_reason", "VARCHAR"),
        ("steps", "INTEGER"),
        ("adapter_step", "INTEGER"),
        ("config", "JSON"),
        ("pairs", "JSON"),
        ("command", "VARCHAR"),
        ("arena_version", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
    ],
    "training_metrics": [
        ("run_id", "VARCHAR"),
        ("step", "INTEGER"),
        ("name", "VARCHAR"),
        ("value", "DOUBLE"),
        ("created_at", "TIMESTAMP"),
    ],
    "training_completions": [  # 0008_grpo.sql
        ("run_id", "VARCHAR"),
        ("step", "INTEGER"),
        ("kind", "VARCHAR"),
        ("idx", "INTEGER"),
        ("prompt", "VARCHAR"),
        ("completion", "VARCHAR"),
        ("reward", "DOUBLE"),
        ("rewards", "JSON"),
        ("advantage", "DOUBLE"),
        ("created_at", "TIMESTAMP"),
    ],
}

EXPECTED_PRIMARY_KEYS = {
    "bbq_items": ["run_id", "item_id"],
    "bbq_responses": ["response_id"],
    "calls": ["call_id"],
    "debates": ["debate_id"],
    "models": ["run_id", "role", "name"],
    "pcp_judgments": ["judgment_id"],
    "pcp_pairs": ["run_id", "pair_id"],
    "pcp_responses": ["response_id"],
    "pcp_train_steps": ["run_id", "topic_id", "step"],
    "runs": ["run_id"],
    "schema_migrations": ["version"],
    "topics": ["run_id", "topic_id"],
    "training_completions": ["run_id", "step", "kind", "idx"],
    "training_metrics": ["run_id", "step", "name"],
    "training_runs": ["run_id"],
    "turns": ["debate_id", "turn_index"],
    "verdicts": ["debate_id", "judge", "variant"],
}

SHIPPED = [
    (1, "initial"),
    (2, "pairs_view"),
    (3, "verdict_variants"),
    (4, "bbq"),
    (5, "pcp"),
    (6, "pcp_train"),
    (7, "training"),
    (8, "grpo"),
]
NEXT = SHIPPED[-1][0] + 1
"""The version of a test's own migration, after the shipped ones."""


def schema_of(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in con.execute(
        """
        SELECT table_name, column_name, data_type FROM duckdb_columns()
        WHERE database_name = current_database() AND NOT internal
        ORDER BY table_name, column_index
        """
    ).fetchall():
        schema.setdefault(table, []).append((column, data_type))
    return schema


def debate(debate_id: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "debate_id": debate_id,
        "run_id": "r1",
        "topic_id": "t1",
        "for_model": "alpha",
        "against_model": "beta",
        "replicate": 1,
        "turns_planned": 4,
        "status": "pending",
        "winner": None,
        "error": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    row.update(overrides)
    return row


def call(call_id: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "call_id": call_id,
        "request_hash": "h-" + call_id,
        "attempt": 1,
        "run_id": "r1",
        "purpose": "turn",
        "model": "alpha",
        "cost_usd": 0.001,
        "started_at": NOW,
    }
    row.update(overrides)
    return row


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "arena.duckdb"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    # A long interval and a large batch: nothing is committed until a flush, which makes
    # "everything below happened in one batch" true by construction.
    opened = Store.open(db, flush_interval_s=60, max_batch_rows=1_000_000)
    yield opened
    opened.close()


# --- migrations and schema -------------------------------------------------------------------


def test_shipped_migrations_are_numbered_files() -> None:
    assert [(m.version, m.name) for m in load_migrations()] == SHIPPED


def test_open_creates_exactly_the_documented_schema(db: Path) -> None:
    Store.open(db).close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert schema_of(con) == EXPECTED_SCHEMA
        keys = con.execute(
            """
            SELECT table_name, constraint_column_names FROM duckdb_constraints()
            WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name
            """
        ).fetchall()
        assert dict(keys) == EXPECTED_PRIMARY_KEYS
        assert con.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall() == (
            SHIPPED
        )


def test_reopening_applies_nothing_twice(db: Path) -> None:
    Store.open(db).close()
    with duckdb.connect(str(db)) as con:
        before = con.execute("SELECT * FROM schema_migrations").fetchall()
    with Store.open(db) as store:
        assert store.read("SELECT * FROM schema_migrations") == before
    with duckdb.connect(str(db)) as con:
        assert apply_migrations(con) == []
        assert schema_of(con) == EXPECTED_SCHEMA


def test_a_new_migration_is_applied_once_and_a_newer_database_is_refused(db: Path) -> None:
    Store.open(db).close()
    extra = Migration(NEXT, "extra", "CREATE TABLE extra (a INTEGER);")
    with duckdb.connect(str(db)) as con:
        assert apply_migrations(con, [*load_migrations(), extra]) == [extra]
        assert apply_migrations(con, [*load_migrations(), extra]) == []
        assert con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall() == [
            (v,) for v in range(1, NEXT + 1)
        ]
    with pytest.raises(StoreError, match=f"schema version {NEXT}, newer than"):
        Store.open(db)
    with pytest.raises(StoreError, match=f"schema version {NEXT}"):  # not "already open"
        Store.open(db)
    # a reader neither refuses nor touches it: it reads what it can
    assert run_query(db, "SELECT count(*) FROM extra").rows == [(0,)]


def test_a_failing_migration_leaves_no_trace(db: Path) -> None:
    broken = Migration(NEXT, "broken", "CREATE TABLE half (a INTEGER); SELECT * FROM nowhere;")
    Store.open(db).close()
    with duckdb.connect(str(db)) as con:
        with pytest.raises(StoreError, match=f"migration {NEXT:04d}_broken failed"):
            apply_migrations(con, [*load_migrations(), broken])
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchall() == [(NEXT - 1,)]
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "half" not in tables


def _views(db: Path) -> list[tuple[str, bool]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT view_name, temporary FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        ).fetchall()


def _old_file(db: Path, upto: int) -> None:
    """A database as a debate-arena that shipped migrations 1..`upto` left it."""
    with duckdb.connect(str(db)) as con:
        apply_migrations(con, [m for m in load_migrations() if m.version <= upto])


def _versions(db: Path) -> list[int]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    return [v for (v,) in rows]


def test_a_reader_migrates_a_file_that_is_behind(db: Path) -> None:
    _old_file(db, 1)  # before the pairs view and the verdict variants
    assert _views(db) == [] and _versions(db) == [1]
    # no one holds the file: the reader takes the write lock for a moment and migrates it
    assert run_query(db, "SELECT count(*) FROM pairs").rows == [(0,)]
    assert _versions(db) == [v for v, _ in SHIPPED]
    assert _views(db) == [("bbq_answers", False), ("pairs", False), ("pcp_train_topics", False)]
    with duckdb.connect(str(db), read_only=True) as con:
        assert schema_of(con) == EXPECTED_SCHEMA
    assert run_query(db, "SELECT count(*) FROM verdicts WHERE counts").rows == [(0,)]


HOLD_READ_ONLY = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
sys.stdin.readline()
"""


def test_a_file_a_reader_cannot_migrate_is_read_as_it_is(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_file(db, 1)
    monkeypatch.setattr("storage.sql.LOCK_WAIT_S", 0.3)
    holder = subprocess.Popen(  # another reader keeps the file open: no write lock to be had
        [sys.executable, "-c", HOLD_READ_ONLY, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        # the view comes as a temporary one, and the file is left as it was
        assert run_query(db, "SELECT count(*) FROM pairs").rows == [(0,)]
        assert run_query(db, "DESCRIBE pairs").rows[0][:2] == ("topic_id", "VARCHAR")
        assert _versions(db) == [1]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=20)
    assert _views(db) == []
    with Store.open(db) as store:  # a writer migrates the file
        assert store.read("SELECT version FROM schema_migrations ORDER BY 1") == [
            (v,) for v, _ in SHIPPED
        ]
    assert _views(db) == [("bbq_answers", False), ("pairs", False), ("pcp_train_topics", False)]


def _old_verdict(debate_id: str, judge: str, winner: str | None) -> dict[str, object]:
    return {
        "debate_id": debate_id,
        "judge": judge,
        "winner": winner,
        "rationale": f"{judge} on {debate_id}",
        "valid": winner is not None,
        "repaired": False,
        "raw_text": "{}",
        "prob_for": 0.25 if judge.startswith("lp") else None,
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "cost_usd": 0.5,
        "latency_s": 0.1,
        "created_at": NOW,
    }


def test_migration_0003_turns_swapped_judge_names_into_variants(db: Path) -> None:
    _old_file(db, 2)  # as debate-arena 0.1 left it
    verdicts = [
        # run r1: "plain" shown sides; "swap" a swap-check judge; "lost" a swap-check judge
        # (its spec says so) whose second verdicts were all lost; "lp:swapped" without "lp"
        _old_verdict("d1", "plain", "FOR"),
        _old_verdict("d1", "swap", "AGAINST"),
        _old_verdict("d1", "swap:swapped", None),
        _old_verdict("d1", "lost", "TIE"),
        _old_verdict("d2", "swap", "FOR"),  # its swapped verdict is missing
        _old_verdict("d2", "lp:swapped", "FOR"),
        # run r2 reuses the name "swap" for a judge without swap_check
        _old_verdict("d3", "swap", "FOR"),
    ]
    judges = {"plain": False, "swap": True, "lost": True, "lp": True}
    with duckdb.connect(str(db)) as con:
        for name in ("d1", "d2", "d3"):
            row = debate(name, run_id="r2" if name == "d3" else "r1")
            con.execute(
                f"INSERT INTO debates ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        for run, specs in (("r1", judges), ("r2", {"swap": False})):
            for name, swap_check in specs.items():
                spec = json.dumps({"name": name, "backend": "sim", "swap_check": swap_check})
                con.execute(
                    "INSERT INTO models VALUES (?, 'judge', ?, 'sim', NULL, '{}', ?)",
                    [run, name, spec],
                )
        for row in verdicts:
            con.execute(
                f"INSERT INTO verdicts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        before = con.execute(
            "SELECT debate_id, winner, rationale, valid, repaired, raw_text, prob_for,"
            " prompt_tokens, completion_tokens, cost_usd, latency_s, created_at"
            " FROM verdicts ORDER BY rationale"
        ).fetchall()
    Store.open(db).close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert schema_of(con)["verdicts"] == EXPECTED_SCHEMA["verdicts"]
        assert con.execute(
            "SELECT debate_id, judge, variant, counts FROM verdicts ORDER BY ALL"
        ).fetchall() == [
            ("d1", "lost", "for_a", True),
            ("d1", "plain", "sides", True),
            ("d1", "swap", "for_a", True),
            ("d1", "swap", "for_b", False),
            ("d2", "lp", "for_b", False),
            ("d2", "swap", "for_a", True),
            ("d3", "swap", "sides", True),
        ]
        # every other column comes through as it was
        assert (
            con.execute(
                "SELECT debate_id, winner, rationale, valid, repaired, raw_text, prob_for,"
                " prompt_tokens, completion_tokens, cost_usd, latency_s, created_at"
                " FROM verdicts ORDER BY rationale"
            ).fetchall()
            == before
        )
    with Store.open(db) as store:  # the key is (debate_id, judge, variant)
        row = _old_verdict("d1", "swap", "FOR") | {"variant": "for_b", "counts": False}
        with pytest.raises(StoreError, match=r"(?i)constraint"):
            store.execute(
                f"INSERT INTO verdicts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        row["variant"] = "both"
        store.insert_rows("verdicts", [row])
        assert store.read("SELECT count(*) FROM verdicts") == [(8,)]


V0_1 = REPO / "tests" / "data" / "v0_1" / "run.duckdb.gz"


@pytest.mark.skipif(not V0_1.is_file(), reason="the debate-arena 0.1 database is not here")
def test_migration_0003_on_a_database_written_by_debate_arena_0_1(db: Path) -> None:
    import gzip
    import shutil

    with gzip.open(V0_1) as src, db.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    assert _versions(db) == [1, 2]
    with duckdb.connect(str(db), read_only=True) as con:
        old = dict(con.execute("SELECT judge, count(*) FROM verdicts GROUP BY 1").fetchall())
    assert old["judge-swap:swapped"] == old["judge-swap"] > 0
    per_debate = run_query(db, "SELECT count(DISTINCT debate_id) FROM verdicts").rows[0][0]
    # the reader migrated it
    assert _versions(db) == [v for v, _ in SHIPPED]
    assert run_query(
        db, "SELECT judge, variant, counts, count(*) FROM verdicts GROUP BY ALL ORDER BY ALL"
    ).rows == [
        ("judge", "sides", True, old["judge"]),
        ("judge-lp", "sides", True, old["judge-lp"]),
        ("judge-swap", "for_a", True, old["judge-swap"]),
        ("judge-swap", "for_b", False, old["judge-swap:swapped"]),
    ]
    # one counting verdict per judge and debate
    assert (
        run_query(
            db, "SELECT count(*) FROM verdicts WHERE counts GROUP BY judge ORDER BY judge"
        ).rows
        == [(per_debate,)] * 3
    )


def test_pending_views_are_only_views_not_yet_applied(db: Path) -> None:
    Store.open(db).close()
    table = Migration(NEXT, "table", "CREATE TABLE extra (a INTEGER);")
    views = Migration(
        NEXT + 1,
        "views",
        "-- two views\nCREATE VIEW v AS SELECT 1 AS a; create or replace view w AS SELECT 2;",
    )
    with duckdb.connect(str(db), read_only=True) as con:
        assert pending_views(con) == []
        statements = pending_views(con, [*load_migrations(), table, views])
        assert [s.split(" AS")[0] for s in statements] == [
            "CREATE TEMP VIEW v",
            "CREATE or replace TEMP VIEW w",
        ]
        for statement in statements:
            con.execute(statement)
        assert con.execute("SELECT * FROM v, w").fetchall() == [(1, 2)]
    with duckdb.connect() as con:  # not one of ours: nothing to add
        assert pending_views(con) == []


def test_pending_views_see_past_leading_comments_of_both_kinds(db: Path) -> None:
    # DuckDB 2.0.1 keeps a statement's leading comments in `extract_statements(...).query`
    Store.open(db).close()
    views = Migration(
        NEXT,
        "commented_views",
        "-- 0003: two views\n-- with a header\n\n"
        "/* a block /* nested */ comment */ CREATE VIEW v AS SELECT 1 AS a;\n"
        "  /* one */ -- and a line\n/* two */\nCREATE OR REPLACE VIEW w AS SELECT 2 AS b; -- end\n",
    )
    mixed = Migration(
        NEXT + 1,
        "mixed",
        "-- a view\nCREATE VIEW x AS SELECT 3;\n/* a table */ CREATE TABLE t (a INT);",
    )
    with duckdb.connect(str(db), read_only=True) as con:
        statements = pending_views(con, [*load_migrations(), views, mixed])
        assert [s.split(" AS")[0] for s in statements] == [
            "CREATE TEMP VIEW v",
            "CREATE OR REPLACE TEMP VIEW w",
        ]
        for statement in statements:
            con.execute(statement)
        assert con.execute("SELECT * FROM v, w").fetchall() == [(1, 2)]


# --- the writer ------------------------------------------------------------------------------


def test_ignore_keeps_the_first_row_and_update_lets_later_values_win(store: Store) -> None:
    w = store.writer
    w.insert("calls", call("a", model="first"))
    w.insert("calls", call("a", model="second"))  # ignored: "a" is already there
    w.insert("calls", call("b", model="first"), on_conflict="update")
    w.insert("calls", call("b", model="second"), on_conflict="update")
    w.insert("calls", call("b", model="third"), on_conflict="update")
    w.flush()
    assert store.read("SELECT call_id, model FROM calls ORDER BY 1") == [
        ("a", "first"),
        ("b", "third"),
    ]
    # and across flushes, against rows already committed
    w.insert("calls", call("a", model="again"))
    w.insert("calls", call("b", model="fourth"), on_conflict="update")
    w.flush()
    assert store.read("SELECT call_id, model FROM calls ORDER BY 1") == [
        ("a", "first"),
        ("b", "fourth"),
    ]


def test_update_sets_only_the_columns_given(store: Store) -> None:
    store.writer.insert("debates", debate("d1"))
    store.writer.flush()
    later = NOW + dt.timedelta(minutes=5)
    store.writer.insert(
        "debates", {"debate_id": "d1", "status": "running", "updated_at": later}, "update"
    )
    store.writer.flush()
    assert store.read("SELECT status, for_model, created_at, updated_at FROM debates") == [
        ("running", "alpha", NOW, later)
    ]


def test_a_key_that_changes_column_sets_within_one_batch_keeps_its_order(store: Store) -> None:
    w = store.writer
    w.insert("debates", debate("d1"))
    w.insert("debates", {"debate_id": "d1", "status": "running"}, "update")
    w.insert("debates", {"debate_id": "d1", "status": "judging", "winner": "FOR"}, "update")
    w.insert("debates", {"debate_id": "d1", "status": "done"}, "update")
    w.insert("debates", debate("d1", status="pending"))  # ignored: d1 exists by now
    w.insert("debates", debate("d2"))
    w.flush()
    assert store.read("SELECT debate_id, status, winner FROM debates ORDER BY 1") == [
        ("d1", "done", "FOR"),
        ("d2", "pending", None),
    ]


def test_plan_merges_same_key_rows_into_one_statement() -> None:
    tables = _catalog()
    rows = [
        prepare_row(tables, "calls", call(f"c{i % 3}", model=f"m{i}"), "update") for i in range(9)
    ]
    chunks = plan_chunks(tables, rows)
    assert len(chunks) == 1
    assert [(r["call_id"], r["model"]) for r in chunks[0].rows] == [
        ("c0", "m6"),
        ("c1", "m7"),
        ("c2", "m8"),
    ]


def _catalog() -> dict[str, TableInfo]:
    with duckdb.connect() as con:
        apply_migrations(con)
        return dict(read_tables(con))


def test_rows_are_committed_without_a_flush_within_a_second(db: Path) -> None:
    with Store.open(db, flush_interval_s=0.2) as store:
        enqueued = time.monotonic()
        for i in range(50):
            store.writer.insert("calls", call(f"c{i}"))
        # store.query does not flush: it sees only what the writer thread has committed
        while store.query("SELECT count(*) FROM calls").rows != [(50,)]:
            assert time.monotonic() - enqueued < 1.0, "rows not committed within a second"
            time.sleep(0.01)


def test_reads_and_writes_see_rows_queued_before_them(store: Store) -> None:
    store.writer.insert("debates", debate("d1"))
    assert store.read("SELECT count(*) FROM debates") == [(1,)]
    store.writer.insert("debates", debate("d2"))
    store.execute("UPDATE debates SET status = 'failed'")
    assert store.read("SELECT debate_id, status FROM debates ORDER BY 1") == [
        ("d1", "failed"),
        ("d2", "failed"),
    ]


def test_a_failed_commit_stops_the_writer_and_keeps_only_a_prefix(db: Path) -> None:
    """The writer is the source of truth: its first failure is a state every later call
    reports, and what reaches the file is the rows queued before the failing one, in order
    (more in test_write_failure.py)."""
    store = Store.open(db, flush_interval_s=60, max_batch_rows=1_000_000)
    w = store.writer
    w.insert("calls", call("good-1"))
    w.insert("calls", {"call_id": "bad"})  # NOT NULL columns missing
    w.insert("calls", call("good-2"))
    with pytest.raises(WriteError, match=r"could not write to .*arena.duckdb: .*NOT NULL") as info:
        w.flush()
    assert "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, duckdb.Error)
    assert w.failure is not None and w.lost == 2  # the bad row and the one queued after it
    with pytest.raises(WriteError, match="NOT NULL"):
        w.flush()  # raised again: nothing more is accepted
    with pytest.raises(WriteError, match="NOT NULL"):
        w.insert("calls", call("good-3"))
    with pytest.raises(WriteError, match="NOT NULL"):
        store.close()
    assert store.closed
    with Store.open(db) as again:
        assert again.read("SELECT call_id FROM calls ORDER BY 1") == [("good-1",)]


def test_a_background_failure_surfaces_on_insert(db: Path) -> None:
    store = Store.open(db, flush_interval_s=0.05)
    store.writer.insert("calls", {"call_id": "bad"})
    deadline = time.monotonic() + 5
    while store.writer.pending:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(WriteError, match="NOT NULL"):
        store.writer.insert("calls", call("next"))
    with pytest.raises(WriteError, match="NOT NULL"):
        store.close()


def test_close_raises_a_pending_write_error_and_still_closes(db: Path) -> None:
    store = Store.open(db, flush_interval_s=60)
    store.writer.insert("calls", {"call_id": "bad"})
    with pytest.raises(WriteError):
        store.close()
    assert store.closed
    Store.open(db).close()  # the file was released


@pytest.mark.parametrize(
    ("table", "row", "on_conflict", "message"),
    [
        ("nope", {"a": 1}, "ignore", "there is no table 'nope'"),
        ("calls", {"call_id": "x", "colour": "red"}, "ignore", "has no column 'colour'"),
        ("calls", {"model": "m"}, "ignore", "needs its key column"),
        ("turns", {"debate_id": "d"}, "update", r"needs its key column\(s\) turn_index"),
        ("calls", call("x"), "replace", "must be 'ignore' or 'update'"),
        ("runs", {"run_id": "r", "config": {1, 2}}, "ignore", "runs.config is JSON"),
        ("calls", {}, "ignore", "empty row"),
    ],
)
def test_bad_rows_are_refused_in_the_callers_thread(
    store: Store, table: str, row: dict[str, object], on_conflict: Any, message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        store.writer.insert(table, row, on_conflict)
    assert store.writer.pending == 0


def test_values_are_normalised_for_their_columns(store: Store) -> None:
    aware = dt.datetime(2026, 3, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    store.writer.insert(
        "runs",
        {
            "run_id": "r1",
            "kind": "tournament",
            "created_at": aware,
            "updated_at": NOW,
            "status": "running",
            "seed": 2**40,
            "turns": 4,
            "replicates": 1,
            "max_tokens": 256,
            "config": {"topics": ["t1"], "temperature": 0.7},
            "arena_version": "0.1.0",
        },
    )
    store.writer.insert("topics", {"run_id": "r1", "topic_id": "t1", "motion": "m", "tags": []})
    store.writer.insert("topics", {"run_id": "r1", "topic_id": "t2", "motion": "m", "tags": None})
    store.writer.insert(
        "topics", {"run_id": "r1", "topic_id": "t3", "motion": "m", "tags": ["a", None]}
    )
    rows = store.read("SELECT created_at, seed, config FROM runs")
    assert rows[0][:2] == (NOW, 2**40)  # 14:00+02:00 is 12:00 UTC
    assert json.loads(rows[0][2]) == {"topics": ["t1"], "temperature": 0.7}
    assert store.read("SELECT topic_id, tags FROM topics ORDER BY 1") == [
        ("t1", []),
        ("t2", None),
        ("t3", ["a", None]),
    ]


def test_many_threads_can_enqueue_at_once(store: Store) -> None:
    def produce(worker: int) -> None:
        for i in range(2000):
            store.writer.insert("calls", call(f"w{worker}-{i}"))

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.writer.flush()
    assert store.read("SELECT count(*), count(DISTINCT call_id) FROM calls") == [(8000, 8000)]


def test_insert_rows_writes_all_or_nothing(store: Store) -> None:
    store.insert_rows("calls", [call("a"), call("b")])
    with pytest.raises(StoreError, match="could not write 2 rows to calls"):
        store.insert_rows("calls", [call("c"), {"call_id": "bad"}])
    store.insert_rows("calls", [call("a", model="new")], on_conflict="update")
    assert store.read("SELECT call_id, model FROM calls ORDER BY 1") == [
        ("a", "new"),
        ("b", "alpha"),
    ]


def test_a_closed_store_refuses_work(db: Path) -> None:
    store = Store.open(db)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.writer.insert("calls", call("a"))
    with pytest.raises(StoreError, match="closed"):
        store.read("SELECT 1")


def test_sql_errors_from_the_store_are_store_errors(store: Store) -> None:
    with pytest.raises(StoreError, match="Table with name nowhere does not exist"):
        store.read("SELECT * FROM nowhere")


# --- one writer per file ---------------------------------------------------------------------

HOLDER = """
import sys
from storage import Store
store = Store.open(sys.argv[1])
if sys.argv[2] == "live":
    store.serve_live()
print("ready", flush=True)
sys.stdin.readline()
store.close()
"""


def hold(db: Path, live: bool) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), "live" if live else "quiet"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def test_the_same_process_cannot_open_a_file_twice(store: Store, db: Path) -> None:
    with pytest.raises(StoreBusyError, match="already open in this process"):
        Store.open(db)


@pytest.mark.parametrize("live", [True, False])
def test_a_second_writer_process_gets_a_one_line_busy_error(db: Path, live: bool) -> None:
    holder = hold(db, live)
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusyError) as info:
            Store.open(db, wait_s=0.3)
        waited = time.monotonic() - started
        if live:
            assert waited < 0.3  # a live tournament will not let go soon: no waiting
        else:
            assert waited >= 0.3  # a brief reader may: it waited before giving up
        message = str(info.value)
        who = "another tournament" if live else "another process"
        assert message == (
            f"arena.duckdb is in use by {who} (pid {holder.pid}); "
            "wait for it to finish or use another --db"
        )
        assert info.value.pid == holder.pid
    finally:
        release(holder)
        assert holder.wait(timeout=20) == 0


def test_open_waits_for_a_holder_that_lets_go(db: Path) -> None:
    holder = hold(db, live=False)
    with pytest.raises(StoreBusyError):
        Store.open(db, wait_s=0)
    release(holder)  # it closes while we are waiting
    with Store.open(db, wait_s=15) as store:
        assert store.read("SELECT count(*) FROM runs") == [(0,)]
    assert holder.wait(timeout=20) == 0


# --- run_query -------------------------------------------------------------------------------


@pytest.fixture
def filled(db: Path) -> Path:
    with Store.open(db) as store:
        store.insert_rows("debates", [debate("d1"), debate("d2", status="done", winner="FOR")])
        store.insert_rows(
            "topics", [{"run_id": "r1", "topic_id": "t1", "motion": "m", "tags": ["x", "y"]}]
        )
    return db


def test_run_query_reads_a_closed_file(filled: Path) -> None:
    result = run_query(filled, "SELECT debate_id, status, created_at FROM debates ORDER BY 1")
    assert result == QueryResult(
        ["debate_id", "status", "created_at"],
        [("d1", "pending", NOW.isoformat()), ("d2", "done", NOW.isoformat())],
    )


def test_run_query_returns_the_last_statement_and_json_safe_values(filled: Path) -> None:
    result = run_query(
        filled,
        "SELECT 1; SELECT tags, 1.25::DECIMAL(5, 2) AS d, now() AS n, 'ab'::BLOB AS b FROM topics",
    )
    assert result.columns == ["tags", "d", "n", "b"]
    [(tags, d, n, b)] = result.rows
    assert (tags, d, b) == (["x", "y"], 1.25, "6162")
    assert isinstance(n, str) and n.startswith(str(dt.datetime.now(dt.UTC).year))
    json.dumps(result.rows)


def test_run_query_on_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.duckdb"
    with pytest.raises(StoreError, match=f"no database at {missing}"):
        run_query(missing, "SELECT 1")
    assert not missing.exists()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELEC 1", "Parser Error: syntax error"),
        ("SELECT * FROM nowhere", "Catalog Error: Table with name nowhere does not exist"),
        ("SELECT status FROM debates WHERE replicate = 'x'", "Conversion Error"),
        ("", "the query is empty"),
    ],
)
def test_bad_sql_is_one_line_store_error(filled: Path, sql: str, expected: str) -> None:
    with pytest.raises(StoreError) as info:
        run_query(filled, sql)
    assert not isinstance(info.value, ReadOnlyQueryError)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


WRITES = [
    "INSERT INTO debates (debate_id) VALUES ('x')",
    "CREATE TABLE x (a INTEGER)",
    "COPY debates TO 'out.csv'",
    "ATTACH 'other.duckdb' AS other",
    "UPDATE debates SET status = 'x'",
    "DELETE FROM debates",
    "DROP TABLE debates",
    "SET threads = 1",
    "PRAGMA table_info('debates')",
    "CHECKPOINT",
    "SELECT 1; DELETE FROM debates",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_are_refused(filled: Path, sql: str) -> None:
    with pytest.raises(ReadOnlyQueryError, match="only read-only queries"):
        run_query(filled, sql)
    assert run_query(filled, "SELECT count(*) FROM debates").rows == [(2,)]


def test_an_explain_that_writes_is_refused(filled: Path) -> None:
    sql = "EXPLAIN ANALYZE INSERT INTO calls SELECT * FROM calls"
    with pytest.raises(ReadOnlyQueryError, match="not EXPLAIN INSERT"):
        run_query(filled, sql)
    with Store.open(filled):  # same process: the store's own cursor, same rules
        with pytest.raises(ReadOnlyQueryError):
            run_query(filled, sql)
        assert run_query(filled, "SELECT count(*) FROM debates").rows == [(2,)]


def test_run_query_uses_a_store_open_in_this_process(filled: Path) -> None:
    with Store.open(filled) as store:
        store.insert_rows("debates", [debate("d3")])
        assert run_query(filled, "SELECT count(*) FROM debates").rows == [(3,)]


def test_a_stale_live_file_is_ignored(filled: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    assert finished.wait() == 0  # its pid is now free
    live_info_path(filled).write_text(
        json.dumps({"pid": finished.pid, "socket": "/nonexistent.sock", "started_at": "x"})
    )
    assert read_live_info(filled) is None
    assert run_query(filled, "SELECT count(*) FROM debates").rows == [(2,)]


def test_a_vanished_live_server_falls_back_to_the_file(filled: Path, tmp_path: Path) -> None:
    # live.json names a running process (this one) whose server is gone: read the file
    live_info_path(filled).write_text(
        json.dumps({"pid": os.getpid(), "socket": str(tmp_path / "gone.sock"), "started_at": "x"})
    )
    assert read_live_info(filled) is not None
    assert run_query(filled, "SELECT count(*) FROM debates").rows == [(2,)]
    Store.open(filled).close()  # and opening the store clears the stale file
    assert not live_info_path(filled).exists()


def test_the_live_server_answers_like_the_file(filled: Path) -> None:
    sql = "SELECT debate_id, winner, created_at, tags FROM debates, topics ORDER BY 1"
    with Store.open(filled) as store:
        store.serve_live()
        store.serve_live()  # idempotent
        info = read_live_info(filled)
        assert info is not None and info.pid == os.getpid()
        assert stat.S_IMODE(os.stat(info.socket).st_mode) == 0o600
        live = query_live(info, sql)
        with pytest.raises(ReadOnlyQueryError):
            query_live(info, "DROP TABLE debates")  # the server checks too
        with pytest.raises(StoreError, match="Catalog Error"):
            query_live(info, "SELECT * FROM nowhere")
    assert not live_info_path(filled).exists()
    assert not Path(info.socket).exists()
    assert live == run_query(filled, sql)
    assert live.rows[1] == ("d2", "FOR", NOW.isoformat(), ["x", "y"])


def test_parameters_are_bound_on_every_path(filled: Path) -> None:
    sql = (
        "SELECT debate_id, winner FROM debates"
        " WHERE status = ? AND list_contains(?::VARCHAR[], debate_id) ORDER BY 1"
    )
    params: list[object] = ["done", ["d1", "d2"]]
    expected = QueryResult(["debate_id", "winner"], [("d2", "FOR")])
    assert run_query(filled, sql, params) == expected  # the file
    assert run_query(filled, sql, tuple(params)) == expected
    with Store.open(filled) as store:
        assert run_query(filled, sql, params) == expected  # a store of this process
        store.serve_live()
        info = read_live_info(filled)
        assert info is not None
        assert query_live(info, sql, params) == expected  # the live server
        with pytest.raises(StoreError, match="one statement"):
            query_live(info, "SELECT 1; SELECT ?", [1])
    # a value is bound, never pasted into the SQL
    injected = ["x' OR 'a' = 'a"]
    assert run_query(filled, "SELECT count(*) FROM debates WHERE status = ?", injected).rows == [
        (0,)
    ]


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ("done", TypeError, "must be a list of values, not str"),
        ([NOW], TypeError, "not datetime"),
        ([["a", {"b": 1}]], TypeError, "not list"),
        ([], StoreError, "parameter"),
    ],
)
def test_bad_parameters_are_refused(
    filled: Path, params: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        run_query(filled, "SELECT count(*) FROM debates WHERE status = ?", params)  # type: ignore[arg-type]


def test_a_query_with_parameters_is_one_statement(filled: Path) -> None:
    with pytest.raises(StoreError, match="must be one statement, and this one has 2"):
        run_query(filled, "SELECT 1; SELECT ?", [1])


def _snapshot_folders(db: Path) -> list[Path]:
    return sorted(db.parent.glob(".arena-snapshot-*"))


def test_read_connection_reads_a_file_no_one_holds(filled: Path, tmp_path: Path) -> None:
    with read_connection(filled) as con:
        assert con.execute("SELECT count(*) FROM debates").fetchall() == [(2,)]
        con.execute("CREATE TEMP TABLE mine AS SELECT * FROM debates")  # scratch is allowed
        con.execute(f"COPY mine TO '{tmp_path / 'mine.parquet'}'")
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM debates")
        assert _snapshot_folders(filled) == []  # the file itself: no copy
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'mine.parquet'}'").fetchall() == [(2,)]
    with (
        pytest.raises(StoreError, match="no database at"),
        read_connection(tmp_path / "none.duckdb"),
    ):
        pass


def test_read_connection_snapshots_a_store_open_in_this_process(filled: Path) -> None:
    with Store.open(filled) as store:
        store.writer.insert("debates", debate("d3"))  # queued: the snapshot comes after it
        with read_connection(filled, tables=["debates", "topics"]) as con:
            [folder] = _snapshot_folders(filled)
            store.insert_rows("debates", [debate("d4")])  # after the snapshot: not in it
            assert con.execute("SELECT count(*) FROM debates").fetchall() == [(3,)]
            assert con.execute("SELECT tags FROM topics").fetchall() == [(["x", "y"],)]
            with pytest.raises(duckdb.CatalogException):  # only the tables asked for
                con.execute("SELECT * FROM calls")
        assert not folder.exists()
        assert store.read("SELECT count(*) FROM debates") == [(4,)]


def test_the_live_server_writes_snapshots(filled: Path, tmp_path: Path) -> None:
    with Store.open(filled) as store:
        store.serve_live()
        info = read_live_info(filled)
        assert info is not None
        target = tmp_path / "copy.duckdb"
        assert snapshot_live(info, target, ["debates", "topics"]) == {"debates": 2, "topics": 1}
        with duckdb.connect(str(target), read_only=True) as con:
            assert schema_of(con) == {t: EXPECTED_SCHEMA[t] for t in ("debates", "topics")}
            assert con.execute("SELECT debate_id, winner FROM debates ORDER BY 1").fetchall() == [
                ("d1", None),
                ("d2", "FOR"),
            ]
        assert sorted(p.name for p in tmp_path.glob("copy.duckdb*")) == ["copy.duckdb"]
        everything = snapshot_live(info, tmp_path / "all.duckdb")
        assert sorted(everything) == sorted(store.tables)
        for bad, message in [
            ((target, None), "which exists"),
            ((tmp_path / "x.duckdb", ["nowhere"]), "no table 'nowhere'"),
            ((Path("relative.duckdb"), None), "must be absolute"),
            ((tmp_path / "no" / "x.duckdb", None), "no folder"),
        ]:
            with pytest.raises(StoreError, match=message):
                snapshot_live(info, *bad)
        assert not (tmp_path / "x.duckdb").exists()
        # the server's database never saw the snapshot's
        attached = store.read("SELECT database_name FROM duckdb_databases() WHERE NOT internal")
        assert attached == [(filled.stem,)]


def test_json_safe_values() -> None:
    from decimal import Decimal
    from uuid import UUID

    value = {
        1: (Decimal("1.5"), dt.date(2026, 1, 2), dt.time(3, 4)),
        "u": UUID(int=1),
        "t": dt.timedelta(seconds=90),
        "b": b"\x00\xff",
    }
    assert json_safe(value) == {
        "1": [1.5, "2026-01-02", "03:04:00"],
        "u": "00000000-0000-0000-0000-000000000001",
        "t": "0:01:30",
        "b": "00ff",
    }


def test_pending_rows_are_frozen_copies(store: Store) -> None:
    row = call("a")
    store.writer.insert("calls", row)
    row["model"] = "changed after insert"
    store.writer.flush()
    assert store.read("SELECT model FROM calls") == [("alpha",)]


def test_free_blocks_cut_off_the_end_are_not_damage(tmp_path: Path) -> None:
    """A checkpoint that frees the last blocks cuts them off the file, while the header still
    counts them after a reopen: such a file is whole (DuckDB reads it). (Truncated files are
    still refused: tests/test_outputs.py `test_a_damaged_database_is_one_line_naming_it`.)"""
    from storage.store import check_not_truncated

    db = tmp_path / "shrunk.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE keep AS SELECT range AS a FROM range(100000)")
        con.execute("CHECKPOINT")
        con.execute("CREATE TABLE big AS SELECT repeat('x', 50) || range AS s FROM range(200000)")
        con.execute("CHECKPOINT")
        con.execute("DROP TABLE big")
        con.execute("INSERT INTO keep VALUES (1)")
        con.execute("CHECKPOINT")
    with duckdb.connect(str(db)) as con:
        size = con.execute("SELECT block_size, total_blocks FROM pragma_database_size()").fetchone()
        assert size is not None and size[0] * size[1] > db.stat().st_size  # counts cut blocks
        check_not_truncated(con, db)
        assert con.execute("SELECT count(*) FROM keep").fetchone() == (100001,)
