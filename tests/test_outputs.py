"""Outputs appear whole or not at all, never over the database, and never clobber by accident.

- `arena.core.files`: the atomic output helper on its own (files, folders, refusals, failures,
  Ctrl-C in the body, stale scratch of dead processes).
- `arena pairs`: `--out` refused for the database, its `.wal` and any DuckDB file (even with
  `--force`, the file byte-identical), an existing output refused without `--force` and replaced
  with it; a full disk is one line naming the file, exit 4; a damaged database one line, exit 2
  (for `arena tournament` too).
- kill -9 at 10 random moments of `arena pairs` writing each of Parquet, JSON Lines and a
  DatasetDict, from a simulated tournament big enough that writing takes a second or more: the
  output's name holds nothing or a complete output, and the next run leaves no scratch; SIGINT
  and SIGTERM mid-write: one line, exit 130, nothing left.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

import pairing.writers
from arena.cli import app
from arena.core.files import (
    OutputRefused,
    atomic_output,
    check_output,
    is_duckdb_file,
    remove_stale_scratch,
    scratch_dir,
    scratch_name,
)
from storage import Store
from storage.sql import SNAPSHOT_PREFIX
from tests.conftest import REPO, arena_cmd, run_arena, sim_models, topics, write_yaml
from tests.test_pairs import VOTED, VOTES, fill

# --- the helper ---------------------------------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".arena-"))


def test_a_file_appears_whole_and_only_with_force_over_another(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.html"
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(f".arena-tmp-{os.getpid()}-")
        assert tmp.name.endswith("-report.html") and not target.exists()
        tmp.write_text("one")
    assert target.read_text() == "one" and leftovers(target.parent) == []
    with pytest.raises(OutputRefused, match="exists; give --force"), atomic_output(target):
        raise AssertionError("the body must not run")
    with atomic_output(target, force=True) as tmp:
        tmp.write_text("two")
    assert target.read_text() == "two"
    # a failure, or Ctrl-C, in the body: the target as it was, the temporary gone
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)), atomic_output(target, force=True) as tmp:
            tmp.write_text("half")
            raise error
        assert target.read_text() == "two" and leftovers(target.parent) == []
    # the name taken while the body wrote, without force: refused, the newcomer kept
    other = tmp_path / "other.txt"
    with pytest.raises(OutputRefused, match="exists"), atomic_output(other) as tmp:
        tmp.write_text("mine")
        other.write_text("theirs")
    assert other.read_text() == "theirs" and leftovers(tmp_path) == []
    # a body that wrote nothing is an error, not an empty output
    with (
        pytest.raises(RuntimeError, match="nothing was written"),
        atomic_output(tmp_path / "never.txt"),
    ):
        pass
    assert not (tmp_path / "never.txt").exists()


def test_a_folder_is_renamed_into_place_and_replaced_only_with_force(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()  # an empty folder is not taken
    with atomic_output(target, directory=True) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
    assert [p.name for p in target.iterdir()] == ["a"]
    with pytest.raises(OutputRefused, match="exists"), atomic_output(target, directory=True):
        pass
    with atomic_output(target, directory=True, force=True) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("2")
    assert [p.name for p in target.iterdir()] == ["b"] and leftovers(tmp_path) == []
    with pytest.raises(OutputRefused, match="is a folder; give a file name"):
        check_output(target, force=True)
    with pytest.raises(OutputRefused, match="is a file; give a folder name"):
        check_output(target / "b", force=True, directory=True)


@pytest.mark.parametrize("one_call", [True, False])
def test_a_large_folder_is_flushed_in_one_call_or_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_call: bool
) -> None:
    """On Linux a tree of many files is flushed by one `syncfs` of its file system, and no file
    is flushed on its own; where that call is missing or fails, every file and folder is."""
    import arena.core.files as files

    tree = tmp_path / "site"
    (tree / "pages").mkdir(parents=True)
    for k in range(2 * files.FSYNC_THREADS):
        (tree / "pages" / f"{k}.html").write_text("x")
    flushed: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real_fsync(fd))[1])
    if one_call:
        if not sys.platform.startswith("linux"):
            pytest.skip("syncfs is Linux's")
        assert files._syncfs(tree) is True
        assert files._syncfs(tmp_path / "missing") is False
    else:
        monkeypatch.setattr(files, "_syncfs", lambda path: False)
    files._fsync(tree)
    assert len(flushed) == (0 if one_call else 2 * files.FSYNC_THREADS + 2)


def test_the_database_is_never_an_output(tmp_path: Path) -> None:
    db = tmp_path / "arena.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    other = tmp_path / "other.db"
    shutil.copy(db, other)
    assert is_duckdb_file(db) and not is_duckdb_file(tmp_path / "missing")
    (tmp_path / "link.parquet").symlink_to(db)
    (tmp_path / "folder").mkdir()
    shutil.copy(db, tmp_path / "folder" / "inside.bin")
    refused = {
        db: "it is the database",
        tmp_path / "." / "arena.duckdb": "it is the database",
        tmp_path / "link.parquet": "it is the database",
        tmp_path / "arena.duckdb.wal": "write-ahead log of the database",
        other: "it is a DuckDB database",
        tmp_path / "other.db.wal": "write-ahead log of a DuckDB database",
    }
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for target, why in refused.items():
        with (
            pytest.raises(OutputRefused, match=why),
            atomic_output(target, force=True, protected=[db]) as tmp,
        ):
            tmp.write_text("over it")
    with pytest.raises(OutputRefused, match="holds the database"):
        check_output(tmp_path, force=True, protected=[db], directory=True)
    with pytest.raises(OutputRefused, match=r"inside\.bin, and it is a DuckDB database"):
        check_output(tmp_path / "folder", force=True, directory=True)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "arena.duckdb.wal").exists() and leftovers(tmp_path) == []


def test_stale_scratch_of_dead_processes_is_removed(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getppid()
    stale = [
        tmp_path / f".arena-tmp-{dead}-0a1b2c-pairs.parquet",
        tmp_path / f".arena-pairs-{dead}-0a1b2c",
        tmp_path / f"{SNAPSHOT_PREFIX}{dead}-abc123",
    ]
    kept = [
        tmp_path / f".arena-tmp-{alive}-0a1b2c-pairs.parquet",
        tmp_path / f".arena-pairs-{os.getpid()}-0a1b2c",
        tmp_path / ".arena-snapshot-oldstyle",  # no pid: whose it is cannot be told
        tmp_path / ".arena-tmp-notes.txt",
        tmp_path / "pairs.parquet",
    ]
    for path in stale + kept:
        if "pairs-" in path.name or "snapshot" in path.name:
            path.mkdir()
            (path / "spill.bin").write_bytes(b"x")
        else:
            path.write_text("x")
    assert sorted(remove_stale_scratch(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    with scratch_dir(tmp_path) as folder:
        assert folder.name.startswith(f".arena-pairs-{os.getpid()}-") and folder.is_dir()
    assert not folder.exists()
    assert len(scratch_name(tmp_path / ("x" * 250)).name) <= 255


# --- arena pairs: refusals, full disks, damaged databases ----------------------------------------


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


def one_line_error(code: int, output: str, expected_code: int = 2) -> str:
    assert code == expected_code, output
    assert output.count("\n") == 1 and output.startswith("error: "), output
    assert "Traceback" not in output
    return output


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_pairs_never_writes_over_a_database(db: Path, tmp_path: Path, force: list[str]) -> None:
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)):
        pass
    wal = db.with_name(db.name + ".wal")
    wal.write_bytes(b"a write-ahead log")
    files = {p: p.read_bytes() for p in (db, other, wal)}
    for out, fmt in [(db, "parquet"), (wal, "jsonl"), (other, "parquet"), (db, "hf")]:
        output = one_line_error(*pairs("--db", db, "--out", out, "--format", fmt, *force))
        assert "will not write" in output or "is a file" in output, output
    assert {p: p.read_bytes() for p in files} == files
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("name", "fmt"), [("p.parquet", "parquet"), ("p.jsonl", "jsonl"),
                                           ("hf", "hf")])  # fmt: skip
def test_an_existing_output_is_replaced_only_with_force(
    db: Path, tmp_path: Path, name: str, fmt: str
) -> None:
    out = tmp_path / "out" / name
    code, output = pairs("--db", db, "--out", out, "--format", fmt, "--test-topics", "t2")
    assert code == 0, output
    before = sorted((p.relative_to(out), p.read_bytes()) for p in [out, *out.rglob("*")]
                    if p.is_file())  # fmt: skip
    output = one_line_error(*pairs("--db", db, "--out", out, "--format", fmt))
    assert output == f"error: {out} exists; give --force to replace it, or another name\n"
    after = sorted((p.relative_to(out), p.read_bytes()) for p in [out, *out.rglob("*")]
                   if p.is_file())  # fmt: skip
    assert after == before
    code, output = pairs("--db", db, "--out", out, "--format", fmt, "--chosen-model", "A",
                         "--force")  # fmt: skip
    assert code == 0 and output.startswith(f"wrote 8 pairs to {out}"), output
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # no scratch, nothing aside
    if fmt == "hf":
        import datasets

        loaded = datasets.load_from_disk(str(out))
        assert loaded["train"].num_rows + loaded["test"].num_rows == 8
    elif fmt == "parquet":
        with duckdb.connect() as con:
            assert con.execute(f"SELECT count(*) FROM '{out}'").fetchall() == [(8,)]
    else:
        assert len(out.read_text().splitlines()) == 8


def test_a_full_disk_is_one_line_and_exit_4(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: COPY fails as DuckDB does on a full disk."""
    out = tmp_path / "out" / "pairs.parquet"

    def full(*_args: object, **_kwargs: object) -> int:
        raise duckdb.IOException(f'IO Error: Could not write file "{out}": No space left on device')

    monkeypatch.setattr(pairing.writers, "copy_pairs", full)
    output = one_line_error(*pairs("--db", db, "--out", out), expected_code=4)
    assert output.startswith(f"error: could not write to {out} (writing pairs): disk full:")
    assert list(out.parent.iterdir()) == []


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB tmpfs (skipped where mounting one is not permitted): smaller than every output."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (and mount)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
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


@pytest.mark.parametrize(
    ("name", "fmt"), [("p.parquet", "parquet"), ("p.jsonl", "jsonl"), ("hf", "hf")]
)
def test_a_real_full_disk_is_one_line_and_exit_4(
    big_db: Path, full_disk: Path, name: str, fmt: str
) -> None:
    out = full_disk / name
    result = run_arena("pairs", "--db", big_db, "--out", out, "--format", fmt)
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: could not write to {out} (writing pairs): disk full")
    assert list(full_disk.iterdir()) == []  # no partial output, no scratch


def damaged(db: Path, how: str) -> Path:
    """A copy of `db` damaged `how`: random bytes, or truncated to some of its size."""
    target = db.with_name(f"{how}.duckdb")
    data = db.read_bytes()
    if how == "random":
        target.write_bytes(random.Random(0).randbytes(len(data)))
    else:
        target.write_bytes(data[: int(len(data) * float(how))])
    return target


@pytest.mark.parametrize("how", ["random", "0.002", "0.1", "0.5", "0.9"])
def test_a_damaged_database_is_one_line_naming_it(db: Path, tmp_path: Path, how: str) -> None:
    bad = damaged(db, how)
    output = one_line_error(*pairs("--db", bad, "--out", tmp_path / "pairs.parquet"))
    assert str(bad) in output and "tournament" not in output, output
    assert not (tmp_path / "pairs.parquet").exists() and leftovers(tmp_path) == []
    models = write_yaml(tmp_path / "models.yaml", sim_models({"A": 0.0, "B": 0.0}))
    topics_file = write_yaml(tmp_path / "topics.yaml", topics(1))
    result = CliRunner().invoke(
        app, ["tournament", "--topics", str(topics_file), "--models", str(models),
              "--db", str(bad), "-q"],
    )  # fmt: skip
    one_line_error(result.exit_code, result.output)
    assert str(bad) in result.output, result.output


# --- kill -9, SIGINT and SIGTERM mid-write --------------------------------------------------------

FORMATS = {
    # name of the output (with its index), flags; each chosen so that writing takes a second+
    "parquet": ("pairs{}.parquet", []),
    "jsonl": ("pairs{}.jsonl", []),
    "hf": ("hf{}", ["--format", "hf", "--max-per-key", "60"]),
}
KILLS = 10


@pytest.fixture(scope="session")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated tournament of 8 models on 20 motions, 4 turns (1,120 debates; about 60,000
    pairs, 110 MB as JSON Lines)."""
    folder = tmp_path_factory.mktemp("big")
    write_yaml(folder / "topics.yaml", topics(20))
    db = folder / "arena.duckdb"
    result = run_arena(
        "tournament", "--topics", folder / "topics.yaml", "--models", REPO / "examples/sim.yaml",
        "--turns", "4", "--db", db, "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return db


def start_pairs(db: Path, out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        arena_cmd("pairs", "--db", db, "--out", out, *args),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def own_scratch(folder: Path, pid: int) -> list[Path]:
    return list(folder.glob(f".arena-*-{pid}-*"))


def wait_for_scratch(proc: subprocess.Popen[str], folder: Path, limit_s: float = 60) -> float:
    """Seconds until the process has scratch in `folder` (it has begun writing)."""
    started = time.monotonic()
    while not own_scratch(folder, proc.pid):
        assert proc.poll() is None, f"it ended before writing: {proc.communicate()}"
        assert time.monotonic() - started < limit_s
        time.sleep(0.005)
    return time.monotonic() - started


def rows_in(out: Path, fmt: str) -> int | None:
    """The rows of a complete output at `out`; None when there is nothing there. Anything
    partial fails to read (or reads short, which the caller sees)."""
    if not out.exists():
        return None
    if fmt == "parquet":
        with duckdb.connect() as con:
            return int(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0])
    if fmt == "jsonl":
        lines = out.read_text(encoding="utf-8").splitlines()
        json.loads(lines[0]), json.loads(lines[-1])  # whole lines at both ends
        return len(lines)
    import datasets

    loaded = datasets.load_from_disk(str(out))
    return int(loaded["train"].num_rows + loaded["test"].num_rows)


@dataclass
class Reference:
    rows: int
    write_s: float  # from its scratch appearing to its output appearing under its name


def reference(db: Path, folder: Path, fmt: str) -> Reference:
    name, flags = FORMATS[fmt]
    out = folder / name.format("-ref")
    proc = start_pairs(db, out, *flags)
    wait_for_scratch(proc, folder)
    began = time.monotonic()
    while not out.exists() and proc.poll() is None:
        time.sleep(0.005)
    write_s = time.monotonic() - began
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    rows = rows_in(out, fmt)
    assert rows
    return Reference(rows, write_s)


def kill_loop(db: Path, folder: Path, fmt: str) -> dict[str, object]:
    """Write `fmt` once whole (the reference), then kill `arena pairs` with SIGKILL at `KILLS`
    random moments of its writing (from its scratch appearing to about when the reference's
    output appeared) and check the output's name each time. Every other run replaces an earlier
    complete output (--force).

    The moment is drawn from the time writing took; when a run ends before its moment (the
    machine got faster), the window shrinks to what it took and the kill is tried again."""
    name, flags = FORMATS[fmt]
    ref = reference(db, folder, fmt)
    rng = random.Random(f"kill-{fmt}")
    seen: dict[str, object] = {"nothing": 0, "complete": 0, "retried": 0, "rows": ref.rows}
    window, kills, i = ref.write_s, 0, 0
    while kills < KILLS:
        i += 1
        assert i <= 2 * KILLS, f"{fmt}: runs kept ending before their moment ({seen})"
        out = folder / name.format(i)
        force = i % 2 == 1
        if force:  # an earlier output to replace
            source = folder / name.format("-ref")
            if source.is_dir():
                shutil.copytree(source, out)
            else:
                shutil.copy(source, out)
        proc = start_pairs(db, out, *flags, *(["--force"] if force else []))
        try:
            wait_for_scratch(proc, folder)
            began = time.monotonic()
            time.sleep(rng.uniform(0, window))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            else:
                window = 0.9 * (time.monotonic() - began)
                seen["retried"] = int(str(seen["retried"])) + 1
        finally:
            proc.kill()
            proc.communicate()
        rows = rows_in(out, fmt)
        assert rows in (None, ref.rows), f"{fmt} run {i}: {rows} rows, not 0 or {ref.rows}"
        key = "nothing" if rows is None else "complete"
        seen[key] = int(str(seen[key])) + 1
    seen["write_s"] = round(ref.write_s, 2)
    return seen


def test_kill_9_leaves_nothing_or_a_complete_output(big_db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with ThreadPoolExecutor(len(FORMATS)) as pool:
        seen = dict(
            zip(
                FORMATS,
                pool.map(lambda fmt: kill_loop(big_db, folder, fmt), FORMATS),
                strict=True,
            )
        )
    for fmt, counts in seen.items():  # some kills landed before the output was complete
        assert int(str(counts["nothing"])) >= 1, (fmt, counts)
    left = leftovers(folder)  # the last kills' scratch (earlier ones: removed by later runs)
    # the next run removes what the killed ones left (scratch named with their dead pids)
    result = run_arena("pairs", "--db", big_db, "--out", folder / "final.parquet")
    assert result.returncode == 0, result.stderr
    assert leftovers(folder) == [] and leftovers(big_db.parent) == []
    print(json.dumps({**seen, "scratch_left_before_the_next_run": len(left)}))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_mid_write_is_one_line_and_exit_130(
    big_db: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "pairs.jsonl"
    proc = start_pairs(big_db, out)
    try:
        wait_for_scratch(proc, tmp_path)
        time.sleep(0.3)
        assert proc.poll() is None, "it finished before the signal"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err == (
        f"interrupted by {sig.name}: nothing was written to {out}, and no scratch is left\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_rank_out_never_replaces_a_database_and_needs_force(tmp_path: Path) -> None:
    """`arena rank --out` writes atomically, refuses the database (and any DuckDB file) even with
    --force, and refuses a taken name without --force."""
    from tests.conftest import run_arena, sim_models
    from tests.conftest import tournament as play

    assert play(tmp_path, sim_models({"a": 1.0, "b": 0.0}, turns=2), 1).returncode == 0
    db = tmp_path / "arena.duckdb"
    before = db.read_bytes()
    for force in ([], ["--force"]):
        result = run_arena("rank", "--db", db, "--format", "html", "--out", db, *force)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "database" in result.stderr and db.read_bytes() == before
    out = tmp_path / "report.json"
    first = run_arena("rank", "--db", db, "--format", "json", "--out", out)
    assert first.returncode == 0 and json.loads(out.read_text())["schema_version"] == 2
    out.write_text("older")
    taken = run_arena("rank", "--db", db, "--format", "json", "--out", out)
    assert taken.returncode == 2 and "--force" in taken.stderr and out.read_text() == "older"
    forced = run_arena("rank", "--db", db, "--format", "json", "--out", out, "--force")
    assert forced.returncode == 0 and json.loads(out.read_text())["schema_version"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".arena-")]


def test_kill_9_during_rank_out_leaves_nothing_or_the_whole_report(
    big_db: Path, tmp_path: Path
) -> None:
    """kill -9 at 10 random moments of `arena rank --out`: the report's name holds nothing or
    the complete report, and the next run leaves no scratch behind."""
    args = ["rank", "--db", big_db, "--format", "html", "--bootstrap", "400", "--seed", "1"]
    reference = tmp_path / "reference.html"
    started = time.monotonic()
    assert run_arena(*args, "--out", reference).returncode == 0
    duration = time.monotonic() - started
    expected = reference.read_bytes()
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    rng = random.Random(7)
    outcomes = {"nothing": 0, "complete": 0}
    for _ in range(10):
        out.unlink(missing_ok=True)
        proc = subprocess.Popen(
            arena_cmd(*args, "--out", out),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, duration * 1.1))
        proc.kill()
        proc.wait()
        if out.exists():
            assert out.read_bytes() == expected
            outcomes["complete"] += 1
        else:
            outcomes["nothing"] += 1
    out.unlink(missing_ok=True)
    assert run_arena(*args, "--out", out).returncode == 0 and out.read_bytes() == expected
    assert leftovers(out.parent) == [], outcomes
