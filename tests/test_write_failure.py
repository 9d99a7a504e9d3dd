"""Nothing recorded is lost: when the database cannot be written, the run stops at once.

A write failure (a full disk, memory running out) puts the writer in a failed state: no call is
sent after it, the command exits with its own code (4) after one line naming the cause and the
file, every debate in the file is either fully recorded or resumable, the run is not marked
`complete`, and the same command, rerun where there is room, ends with exactly the rows of a run
that never failed. Tested three ways: the writer alone (what reaches the file is a prefix of what
was queued, so no turn outlives its `calls` row), a failure injected into the writer's commit
after a few batches (in process, so that the moment is chosen), and a real full disk (a 2 MB
tmpfs; skipped where mounting one is not permitted).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from rich.console import Console

import storage.writer
from arena.records import CallRow, TurnRow
from arena.tournament import EXIT_WRITE, run_tournament
from storage import Store, WriteError
from storage.errors import DISK_FULL, OUT_OF_MEMORY
from storage.writer import Chunk
from tests.conftest import query, run_arena, sim_models, topics, write_yaml

NOW = datetime(2026, 3, 1, 12, 0, 0)
DISK_FULL_MESSAGE = 'IO Error: Could not write file "{db}.wal": No space left on device'
OUT_OF_MEMORY_MESSAGE = "Out of Memory Error: could not allocate block of size 256.0 KiB"

COMPARED = {
    "debates": "select debate_id, run_id, topic_id, for_model, against_model, replicate, status,"
    " winner, error from debates order by all",
    "turns": "select debate_id, turn_index, side, role, model, text, raw_text, reasoning,"
    " prompt_tokens, completion_tokens, finish_reason, call_id from turns order by all",
    "verdicts": "select debate_id, judge, variant, counts, winner, rationale, valid, repaired,"
    " raw_text, prob_for from verdicts order by all",
    "calls": "select call_id, request_hash, attempt, run_id, debate_id, purpose, model,"
    " prompt_tokens, completion_tokens, finish_reason, error from calls order by all",
}
"""Every column that does not depend on the clock (timestamps and latencies do)."""


def recorded_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {table: query(db, sql) for table, sql in COMPARED.items()}


def assert_intact(db: Path) -> None:
    """Every debate in the file is fully recorded or resumable: its turns are gap-free and each
    has its `calls` row; a `done` debate has all its turns and a verdict."""
    assert query(
        db,
        "select count(*) from (select debate_id, max(turn_index) m, count(*) c from turns"
        " group by all) where m != c",
    ) == [(0,)], "a debate's turns have a gap"
    assert query(
        db, "select count(*) from turns t left join calls c using (call_id) where c.call_id is null"
    ) == [(0,)], "a turn references a call that is not stored"
    assert query(
        db,
        "select count(*) from debates d where status = 'done' and (turns_planned !="
        " (select count(*) from turns t where t.debate_id = d.debate_id)"
        " or not exists (select 1 from verdicts v where v.debate_id = d.debate_id))",
    ) == [(0,)], "a done debate misses rows"


# --- the writer alone ----------------------------------------------------------------------------


def _call(call_id: str) -> dict[str, object]:
    return CallRow(call_id, "h-" + call_id, 1, "r1", "d1", "turn", "m", NOW).row()


def _turn(index: int, call_id: str) -> dict[str, object]:
    side = "FOR" if index % 2 else "AGAINST"
    return TurnRow(
        "d1", index, side, "rebuttal", "m", "text", "text", None, 1, 1, 0.0, 0.1, "stop",
        call_id, NOW,
    ).row()  # fmt: skip


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (duckdb.IOException(DISK_FULL_MESSAGE.format(db="arena.duckdb")), DISK_FULL),
        (duckdb.OutOfMemoryException(OUT_OF_MEMORY_MESSAGE), OUT_OF_MEMORY),
    ],
)
def test_the_writer_keeps_a_prefix_so_no_turn_outlives_its_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: duckdb.Error, reason: str
) -> None:
    """A row the database refuses (here: c2's, as a full disk or exhausted memory would refuse
    any) stops the writer. What it had queued before reaches the file, in order; that row and
    everything queued after it do not. (Replaying a failed batch statement by statement, then row
    by row, as an earlier writer did, kept t2 and t3 and dropped c2: a turn whose call was lost
    for good.)"""
    real = storage.writer.execute_chunks

    def refuse_c2(con: duckdb.DuckDBPyConnection, chunks: Sequence[Chunk]) -> None:
        calls = [row for chunk in chunks if chunk.info.name == "calls" for row in chunk.rows]
        if any(row["call_id"] == "c2" for row in calls):
            raise failure
        real(con, chunks)

    monkeypatch.setattr(storage.writer, "execute_chunks", refuse_c2)
    db = tmp_path / "arena.duckdb"
    store = Store.open(db, flush_interval_s=60, max_batch_rows=1_000_000)
    told: list[WriteError] = []
    store.writer.on_failure(told.append)
    for index in (1, 2, 3):
        store.writer.insert("calls", _call(f"c{index}"))
        store.writer.insert("turns", _turn(index, f"c{index}"))
    with pytest.raises(WriteError) as info:
        store.writer.flush()
    assert info.value.reason == reason
    assert str(info.value) == f"could not write to {db}: {reason}: {failure}"
    assert len(told) == 1 and told[0].reason == reason
    assert store.writer.lost == 4  # c2, t2, c3, t3
    with pytest.raises(WriteError, match=reason):
        store.writer.insert("calls", _call("c4"))  # nothing more is accepted
    with pytest.raises(WriteError, match=reason):
        store.writer.check()
    late: list[WriteError] = []
    store.writer.on_failure(late.append)  # a callback registered late is told at once
    assert len(late) == 1
    with pytest.raises(WriteError, match=reason):
        store.close()
    assert query(db, "select call_id from calls") == [("c1",)]
    assert query(db, "select turn_index, call_id from turns") == [(1, "c1")]


# --- a failure injected into the writer's commit -------------------------------------------------


def _scripted_setup(folder: Path) -> tuple[Path, Path, Path]:
    """topics.yaml and models.yaml of scripted models that log every request they are sent."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "requests.jsonl"
    scripted = {
        "backend": "scripted",
        "replies": ["First point, made well.", "A second point.", "A rebuttal of theirs."],
        "delay_s": 0.05,
        "log_file": str(log),
    }
    judge = {**scripted, "replies": ['{"winner": "FOR", "rationale": "r"}', '{"winner": "TIE"}']}
    models = {
        "tournament": {"turns": 4, "max_concurrency": 4},
        "models": [{"name": f"s{i}", **scripted} for i in range(4)],
        "judges": [{"name": "j", **judge}],
    }
    return (
        write_yaml(folder / "topics.yaml", topics(2)),
        write_yaml(folder / "models.yaml", models),
        log,
    )


def _logged(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _play(topics_file: Path, models_file: Path, db: Path) -> tuple[int, str]:
    """Run the tournament in this process, as `arena tournament ... -q` would; (code, output)."""
    out = io.StringIO()
    argv = ["tournament", "--topics", str(topics_file), "--models", str(models_file)]
    argv += ["--db", str(db), "-q"]
    code = run_tournament(
        topics_file,
        models_file,
        db,
        {},
        quiet=True,
        console=Console(file=out, width=400, soft_wrap=True),
        argv=argv,
    )
    return code, out.getvalue()


@contextlib.contextmanager
def _disk_fills_after(batches: int, db: Path) -> Iterator[list[float]]:
    """The writer's commits succeed `batches` times, then fail as on a full disk, for good.
    Yields a list that gets the time of the first failure."""
    real = storage.writer.execute_chunks
    committed = 0
    failed_at: list[float] = []
    lock = threading.Lock()

    def commit(con: duckdb.DuckDBPyConnection, chunks: Sequence[Chunk]) -> None:
        nonlocal committed
        if threading.current_thread().name == "storage-writer":
            with lock:
                if committed >= batches:
                    if not failed_at:
                        failed_at.append(time.time())
                    raise duckdb.IOException(DISK_FULL_MESSAGE.format(db=db))
                committed += 1
        real(con, chunks)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage.writer, "execute_chunks", commit)
        yield failed_at


def test_a_failing_store_stops_the_run_and_the_rerun_completes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topics_file, models_file, log = _scripted_setup(tmp_path / "failing")
    db = tmp_path / "failing" / "arena.duckdb"
    n_debates, n_calls = 4 * 3 * 2, 4 * 3 * 2 * (4 + 1)
    with caplog.at_level(logging.ERROR), _disk_fills_after(3, db) as failed_at:
        code, out = _play(topics_file, models_file, db)
        gc.collect()  # an exception left in a task is reported when the task is collected
    # One line names the cause and the file; the command exits with the write-failure code.
    assert code == EXIT_WRITE == 4, out
    lines = out.splitlines()
    assert lines[0].startswith(f"error: could not write to {db}: disk full: IO Error"), out
    assert "no call was sent after the failure" in lines[1] and "rerun" in lines[1], out
    assert not [r for r in caplog.records if r.name == "asyncio"], "an exception was not retrieved"
    # No call was sent after the failure (a request is logged as it is sent; 50 ms of slack for
    # the moment between the failed commit and the writer's failed state), and the run stopped
    # well short of its plan.
    sent = _logged(log)
    assert failed_at and sent
    assert max(entry["time"] for entry in sent) < failed_at[0] + 0.05
    assert len(sent) < n_calls * 0.8
    # What the file holds is intact and resumable; the run is not complete.
    assert_intact(db)
    stored_turns = query(db, "select count(*) from turns")[0][0]
    assert 0 < stored_turns < n_debates * 4, "the failure must land mid-run"
    assert query(db, "select status from runs") == [("running",)]  # never marked complete

    # The same command on a healthy store finishes with exactly the rows of a clean run.
    code, out = _play(topics_file, models_file, db)
    assert code == 0, out
    assert f"{n_debates}/{n_debates} debates done" in out
    assert query(db, "select status from runs") == [("complete",)]
    clean_topics, clean_models, _ = _scripted_setup(tmp_path / "clean")
    clean_db = tmp_path / "clean" / "arena.duckdb"
    assert _play(clean_topics, clean_models, clean_db)[0] == 0
    resumed, clean = recorded_rows(db), recorded_rows(clean_db)
    assert len(clean["turns"]) == n_debates * 4 and len(clean["verdicts"]) == n_debates
    assert resumed == clean


# --- a real full disk ----------------------------------------------------------------------------


@contextlib.contextmanager
def _small_disk(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder`; skips the test where mounting is not permitted."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (and mount)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _sim_command(folder: Path, db: Path) -> list[str | Path]:
    """`arena tournament` on 8 simulated models and 6 motions: 336 debates, about 4 MB."""
    models = sim_models({f"m{i}": 1.0 - 0.3 * i for i in range(8)}, turns=10, seed=7)
    write_yaml(folder / "models.yaml", models)
    write_yaml(folder / "topics.yaml", topics(6))
    return ["tournament", "--topics", folder / "topics.yaml", "--models", folder / "models.yaml",
            "--db", db, "-q"]  # fmt: skip


def test_a_full_disk_stops_the_run_and_a_copy_with_room_completes_it(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    with _small_disk(tmp_path / "small") as small:
        db = small / "arena.duckdb"
        failed = run_arena(*_sim_command(config, db), timeout=300)
        assert failed.returncode == EXIT_WRITE, failed.stderr
        first, *rest = failed.stderr.splitlines()
        assert first.startswith(f"error: could not write to {db}: disk full: "), failed.stderr
        assert "No space left on device" in first
        assert "Traceback" not in failed.stderr and "never retrieved" not in failed.stderr
        assert any("copy" in line and "arena.duckdb.wal" in line for line in rest)
        roomy = tmp_path / "roomy"
        roomy.mkdir()
        for name in os.listdir(small):  # the file and its write-ahead log
            shutil.copy(small / name, roomy / name)
    copied = roomy / "arena.duckdb"
    assert_intact(copied)
    assert query(copied, "select status from runs") != [("complete",)]
    assert 0 < query(copied, "select count(*) from turns")[0][0] < 336 * 10

    rerun = run_arena(*_sim_command(config, copied), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "336/336 debates done" in rerun.stderr
    clean = tmp_path / "clean"
    clean.mkdir()
    assert run_arena(*_sim_command(config, clean / "arena.duckdb"), timeout=300).returncode == 0
    assert recorded_rows(copied) == recorded_rows(clean / "arena.duckdb")
    assert query(copied, "select status from runs") == [("complete",)]


# --- the runner: the store decides what is done ------------------------------------------------


def test_a_run_is_complete_only_when_the_store_confirms_every_debate(tmp_path: Path) -> None:
    """The summary counts what the store holds: a debate whose turn lost its `calls` row (as
    the writer before this one could lose it) is not counted done, and the run is not marked
    complete, however finished the engine believes it."""
    models = sim_models({"a": 1.0, "b": 0.0}, turns=2)
    topics_file = write_yaml(tmp_path / "topics.yaml", topics(2))
    models_file = write_yaml(tmp_path / "models.yaml", models)
    db = tmp_path / "arena.duckdb"
    assert _play(topics_file, models_file, db)[0] == 0
    assert query(db, "select status from runs") == [("complete",)]
    with duckdb.connect(str(db)) as con:
        con.execute("delete from calls where call_id = (select min(call_id) from turns)")
    code, out = _play(topics_file, models_file, db)
    assert code == 1, out
    assert "run run-" in out and "3/4 debates done (4 already recorded)" in out
    assert "1 debates were played but the database does not hold all their rows" in out
    assert query(db, "select status from runs") == [("incomplete",)]


class _Broken(Exception):
    pass


def test_a_bug_in_a_task_stops_the_run_and_is_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error in one unit stops the run (no new unit, the others cancelled) and is
    raised from `Runner.run`, not left in a task nobody awaits."""
    import asyncio

    from arena.backends import create_backend
    from arena.backends.scripted import ScriptedSpec
    from arena.config import RetrySettings
    from arena.runner import RunContext, Runner
    from tests.test_runner import Item, ToyTask, items, open_store

    class Buggy(ToyTask):
        async def play(self, unit: Item, state: str | None, ctx: RunContext) -> None:
            if unit.prompt == "question 3":
                raise _Broken("a bug")
            await super().play(unit, state, ctx)

    log = tmp_path / "requests.jsonl"
    spec = {"name": "toy-model", "backend": "scripted", "replies": ["ok"], "delay_s": 0.05}
    with caplog.at_level(logging.ERROR), open_store(tmp_path / "toy.duckdb") as store:
        runner = Runner(
            Buggy(store),
            store,
            "toy-run",
            {
                "toy-model": create_backend(
                    ScriptedSpec.model_validate({**spec, "log_file": str(log)})
                )
            },
            max_concurrency=2,
            request_timeout_s=10,
            retry=RetrySettings(max_attempts=1),
        )
        with pytest.raises(_Broken):
            asyncio.run(runner.run(iter(items(200)), 200))
        gc.collect()
    assert len(_logged(log)) < 40  # stopped at once: the window is 16 units
    assert not [r for r in caplog.records if r.name == "asyncio"]
