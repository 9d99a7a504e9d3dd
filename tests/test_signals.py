"""SIGINT, SIGTERM, SIGHUP and SIGQUIT end a tournament the way Ctrl-C does; live sockets and
live.json never outlive it, and what a SIGKILL leaves is removed by the next start.

Each signal is sent to a real `arena tournament` subprocess playing slow simulated models (sim
`latency_s`), once it serves live reads and has recorded turns. Every subprocess gets a private
temporary folder (TMPDIR), so the live sockets it makes are the test's own to count.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arena.tournament import StopSignals
from storage.live import live_info_path, read_live_info, remove_stale_sockets, socket_path_for
from tests.conftest import REPO, arena_cmd, query, run_arena, sim_models, topics, write_yaml


@pytest.fixture
def sockets_dir() -> Iterator[Path]:
    """A short private TMPDIR (a Unix socket path must stay under ~100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="as-", dir="/tmp"))
    try:
        yield folder
    finally:
        for entry in folder.iterdir():
            entry.unlink()
        folder.rmdir()


N_TOPICS = 2
N_DEBATES = 3 * 2 * N_TOPICS  # 3 models, each ordered pair once per topic
TURNS = 4


def _files(tmp_path: Path, latency_s: float, n_topics: int = N_TOPICS) -> list[str | Path]:
    models = sim_models({"A": 1.0, "B": 0.0, "C": -1.0}, turns=TURNS, max_concurrency=2)
    for model in models["models"]:
        model["latency_s"] = latency_s
    write_yaml(tmp_path / "topics.yaml", topics(n_topics))
    write_yaml(tmp_path / "models.yaml", models)
    return ["--topics", tmp_path / "topics.yaml", "--models", tmp_path / "models.yaml"]


def _start(db: Path, files: list[str | Path], sockets: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        arena_cmd("tournament", *files, "--db", db, "-q"),
        env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(sockets)},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_live(proc: subprocess.Popen[str], db: Path, sockets: Path) -> None:
    """Until the tournament serves live reads from its socket in `sockets`, and a bit more
    (so that turns are recorded and calls are in flight when the signal comes)."""
    deadline = time.monotonic() + 60
    while read_live_info(db) is None or not list(sockets.glob("arena-live-*.sock")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the tournament never served live reads"
        time.sleep(0.05)
    time.sleep(0.7)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_a_stop_signal_ends_the_run_like_ctrl_c(
    tmp_path: Path, sockets_dir: Path, sig: signal.Signals
) -> None:
    db = tmp_path / "arena.duckdb"
    files = _files(tmp_path, latency_s=0.1)
    proc = _start(db, files, sockets_dir)
    try:
        _wait_live(proc, db, sockets_dir)
        info = read_live_info(db)
        assert info is not None and info.pid == proc.pid
        sock = Path(info.socket)
        assert sock.parent == sockets_dir
        assert sock.name == socket_path_for(db.resolve(), proc.pid).name
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    by = "" if sig == signal.SIGINT else f" by {sig.name}"
    assert f"Stopped{by}. " in err and "Continue with: arena tournament" in err, err
    assert query(db, "select status from runs") == [("interrupted",)]
    recorded = query(db, "select count(*) from turns")[0][0]
    assert 0 < recorded < N_DEBATES * TURNS, "the signal must land mid-run"
    # the live socket and live.json went with it
    assert list(sockets_dir.iterdir()) == []
    assert not live_info_path(db).exists()
    assert not db.with_name(db.name + ".live.tmp").exists()
    # and the printed command continues the run
    rerun = run_arena("tournament", *files, "--db", db, "-q", env={"TMPDIR": str(sockets_dir)})
    assert rerun.returncode == 0, rerun.stderr
    assert "continuing run" in rerun.stderr
    assert query(db, "select status, count(*) from runs group by all") == [("complete", 1)]
    assert list(sockets_dir.iterdir()) == []


def test_what_sigkill_leaves_is_removed_by_the_next_start(
    tmp_path: Path, sockets_dir: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    killed = first / "arena.duckdb"
    proc = _start(killed, _files(first, latency_s=0.1), sockets_dir)
    try:
        _wait_live(proc, killed, sockets_dir)
    finally:
        proc.kill()
        proc.wait()
    stale = sockets_dir / socket_path_for(killed.resolve(), proc.pid).name
    assert stale.exists() and live_info_path(killed).exists()  # SIGKILL: nothing cleaned up
    assert read_live_info(killed) is None  # readers ignore a dead pid's live.json
    # an old-style socket (no pid in its name) that nothing listens on is stale too
    legacy = sockets_dir / f"arena-live-{'0' * 16}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unbound:
        unbound.bind(str(legacy))

    # another tournament, on another database, starts: the dead one's sockets go
    other = second / "arena.duckdb"
    done = run_arena(
        "tournament", *_files(second, latency_s=0.0, n_topics=1), "--db", other, "-q",
        env={"TMPDIR": str(sockets_dir)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(sockets_dir.iterdir()) == []
    # the killed database's live.json goes when a tournament opens it again
    rerun = run_arena(
        "tournament", *_files(first, latency_s=0.0), "--db", killed, "-q",
        env={"TMPDIR": str(sockets_dir)},
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert not live_info_path(killed).exists()
    assert list(sockets_dir.iterdir()) == []


def test_remove_stale_sockets_keeps_live_ones(
    sockets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(sockets_dir))
    dead = subprocess.Popen(["true"])
    dead.wait()
    db = Path("/x/arena.duckdb")
    mine, gone = socket_path_for(db), socket_path_for(db, dead.pid)
    parent = socket_path_for(db, os.getppid())
    other = sockets_dir / "arena-live-not-ours.sock"
    for path in (mine, gone, parent, other):
        path.touch()
    removed = remove_stale_sockets()  # (it also cleans /tmp, where others may have left some)
    assert [p for p in removed if p.parent == sockets_dir] == [gone]
    assert sorted(p.name for p in sockets_dir.iterdir()) == sorted(
        p.name for p in (mine, parent, other)
    )


def test_stop_signals_defer_outside_play_and_cancel_during_it() -> None:
    """Set-up and wrap-up are never cut short: a signal there is only noted; during play it
    cancels the main task, also when it came before play began."""
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # handlers run between bytecodes
        assert signals.received == "SIGTERM"

        async def play() -> str:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None
            with signals.cancelling(loop, task):
                await asyncio.sleep(5)
            return "played"

        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(play())
        assert time.monotonic() - started < 2
    assert signal.getsignal(signal.SIGTERM) == before

    with StopSignals() as signals:

        async def interrupted_play() -> None:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None
            with signals.cancelling(loop, task):
                loop.call_later(0.2, os.kill, os.getpid(), signal.SIGHUP)
                await asyncio.sleep(5)

        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(interrupted_play())
        assert time.monotonic() - started < 2 and signals.received == "SIGHUP"
