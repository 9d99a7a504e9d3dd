"""`arena view` on a 15,000-debate store: how long the site takes, how big it is, its largest page.

The store is `bench/pairs.py`'s synthetic arena (10 models, 259 topics, 13,726 debates of 10
turns of 1,500 characters), with a second run of 1,274 debates copied from the first to make
15,000, and judges' verdicts added by SQL: a plain judge (`sides`) and a swap-check judge
(`for_a`, `for_b`) on every debate, the swap-check judge's second reading disagreeing on 10%.

Goal (issue 15): the whole site in under 10 s, no page over 2 MB.

Baseline, same run: the disk's floor for this site, the same number of files of the same sizes
written by plain Python into a new folder, flushed as `arena view` flushes its output
(`arena.core.files`) and renamed into place: what any tool writing these pages pays. The two
take turns for `--rounds` rounds (the machines are shared, and their disks noisy); the table
gives medians and the ratio of `arena view` to the floor.

Every round writes new folders, and nothing is removed before the end: on an ext4 file system
without a journal (the test machines' disk), creating files is several times slower for a few
minutes after many were deleted, as the kernel skips recently freed inodes. For the same reason,
leave a few minutes between two runs of this benchmark.

    PYTHONPATH=. python bench/view.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench.pairs import build_store

REPO = Path(__file__).resolve().parents[1]
SECOND_RUN = 1_274

VERDICTS_SQL = """
INSERT INTO verdicts
SELECT d.debate_id, j.judge, j.variant, j.variant <> 'for_b',
       CASE WHEN d.winner IS NULL THEN NULL
            WHEN j.variant = 'for_b' AND hash(d.debate_id) % 10 = 0 THEN
                 CASE d.winner WHEN 'FOR' THEN 'AGAINST' ELSE 'FOR' END
            ELSE d.winner END,
       'Mean evidence strength FOR +0.40, AGAINST -0.10.', d.winner IS NOT NULL, false,
       '{"winner": "FOR", "rationale": "..."}', NULL, 2100, 30, NULL, 0.4, now()::TIMESTAMP
FROM debates d, (VALUES ('plain', 'sides'), ('swap', 'for_a'), ('swap', 'for_b')) j(judge, variant)
"""


def extend(path: Path) -> None:
    """A second run of `SECOND_RUN` debates copied from the first, and every debate's verdicts."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            "INSERT INTO runs SELECT 'bench-2', kind, created_at, updated_at, status, seed, turns,"
            " replicates, max_tokens, config, command, arena_version FROM runs"
        )
        con.execute(
            "INSERT INTO topics SELECT 'bench-2', topic_id, motion, category, tags FROM topics"
        )
        con.execute(
            f"CREATE TEMP TABLE copied AS SELECT debate_id FROM debates ORDER BY debate_id"
            f" LIMIT {SECOND_RUN}"
        )
        con.execute(
            "INSERT INTO debates SELECT md5(debate_id || '/2'), 'bench-2', topic_id, for_model,"
            " against_model, replicate, turns_planned, status, winner, error, created_at,"
            " updated_at FROM debates WHERE debate_id IN (SELECT debate_id FROM copied)"
        )
        con.execute(
            "INSERT INTO turns SELECT md5(debate_id || '/2'), turn_index, side, role, model, text,"
            " raw_text, reasoning, prompt_tokens, completion_tokens, cost_usd, latency_s,"
            " finish_reason, call_id || '/2', created_at FROM turns"
            " WHERE debate_id IN (SELECT debate_id FROM copied)"
        )
        con.execute(VERDICTS_SQL)
        debates, verdicts = con.execute(
            "SELECT (SELECT count(*) FROM debates), (SELECT count(*) FROM verdicts)"
        ).fetchone() or (0, 0)
    print(f"store: {debates:,} debates, {verdicts:,} verdicts")


def floor(sizes: list[int], target: Path) -> float:
    """Seconds to write `sizes` as files into a new folder, flush them and rename it to
    `target`, as `arena view` commits its site."""
    from arena.core.files import _fsync

    started = time.perf_counter()
    folder = target.with_name(target.name + ".tmp")
    (folder / "pages").mkdir(parents=True)
    block = b"x" * max(sizes)
    for k, size in enumerate(sizes):
        (folder / "pages" / f"page-{k:06d}.html").write_bytes(block[:size])
    _fsync(folder)
    folder.rename(target)
    return time.perf_counter() - started


def view(db: Path, out: Path) -> float:
    """Seconds `arena view` takes, as a command; prints its output and its peak RSS."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "arena", "view", "--db", str(db), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(result.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(result.stdout.strip(), f"(largest process so far: peak RSS {peak:,.0f} MB)")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "arena.duckdb"
        seconds = build_store(db, 1)
        extend(db)
        print(f"built in {seconds:.1f} s (+ extension)")
        walls: list[float] = []
        floors: list[float] = []
        for k in range(args.rounds):
            out = Path(folder) / f"site-{k}"
            walls.append(view(db, out))
            sizes = {p: p.stat().st_size for p in out.rglob("*") if p.is_file()}
            floors.append(floor(list(sizes.values()), Path(folder) / f"floor-{k}"))
            print(f"round {k + 1}: arena view {walls[-1]:.1f} s, floor {floors[-1]:.1f} s")
        largest = max(sizes, key=lambda p: sizes[p])
        wall, base = statistics.median(walls), statistics.median(floors)
        print(
            f"arena view: median {wall:.1f} s wall over {args.rounds} rounds (interpreter start"
            f" included; goal < 10 s); the disk's floor {base:.1f} s; ratio {wall / base:.1f}x"
        )
        print(
            f"site: {len(sizes):,} files, {sum(sizes.values()) / 2**20:.0f} MiB;"
            f" largest page {largest.relative_to(out)} {sizes[largest] / 2**20:.2f} MiB"
            " (goal <= 2 MB)"
        )
        for kind in ("debates", "runs", "models"):
            part = [s for p, s in sizes.items() if p.relative_to(out).parts[0] == kind]
            print(f"  {kind}/: {len(part):,} pages, largest {max(part) / 1024:.0f} KiB")
        print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
