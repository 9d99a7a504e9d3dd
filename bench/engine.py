"""Engine throughput and memory, the current engine against a baseline measured in the same run.

Each measurement runs in a fresh process (so peak resident memory is that run's own) for the
current tree and, with `--baseline-ref REF`, for the engine at that git commit (checked out into
a temporary worktree), taking turns. The configs are written as YAML files and loaded by each
tree's own loader, so both engines play exactly the same tournament.

1. Zero-latency simulated models, durable writes: turns/s through the whole engine. Also the
   simulated model alone in a bare loop (no engine, no store): the ratio is the share of time
   the engine leaves to the models.
2. 0.5 s simulated latency at concurrency 512: achieved calls/s divided by the ideal 1,024/s, and
   by a bare asyncio skeleton of the same workload (debates of 11 dependent calls, same limits).
3. Peak resident memory (ru_maxrss) for 20,000 and 80,000 debates of 2 turns at zero latency,
   with what DuckDB says it holds at the end; and the peak of Python's own allocations
   (tracemalloc) for 5,000 and 20,000 debates: flat means the plan is streamed and only the
   window of debates under way is in memory.
4. For the record: concurrency 4,096 at 0.5 s, 20 models x 25 motions.

    python bench/engine.py --baseline-ref 33c0582     # everything, old engine beside the new
    python bench/engine.py --quick                     # smaller sizes, current tree only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


# --- one measurement, in a worker process --------------------------------------------------------


def _write_config(
    folder: Path, n_models: int, n_topics: int, latency: float, c: int, turns: int
) -> tuple[Path, Path]:
    topics = [
        {"id": f"t{i}", "motion": f"This house supports proposal {i}."} for i in range(n_topics)
    ]
    models = {
        "tournament": {"max_concurrency": c, "turns": turns},
        "models": [
            {"name": f"m{i}", "backend": "sim", "skill": i / n_models, "latency_s": latency,
             "max_concurrency": c}
            for i in range(n_models)
        ],
        "judges": [{"name": "judge", "backend": "sim", "latency_s": latency, "max_concurrency": c}],
    }  # fmt: skip
    (folder / "topics.yaml").write_text(yaml.safe_dump({"topics": topics}))
    (folder / "models.yaml").write_text(yaml.safe_dump(models))
    return folder / "topics.yaml", folder / "models.yaml"


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Play one tournament into a fresh database; figures as a dict."""
    from arena.config import load_tournament
    from storage import Store

    try:
        from arena.tournament import Tournament  # the runner (this tree)
    except ImportError:  # pragma: no cover - older trees
        from arena.engine import Tournament  # type: ignore[no-redef]
    if not hasattr(Tournament, "run"):  # pragma: no cover - older trees
        from arena.engine import Tournament  # type: ignore[no-redef]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        topics, models = _write_config(
            folder, args.models, args.topics, args.latency, args.concurrency, args.turns
        )
        config = load_tournament(topics, models, {})
        store = Store.open(folder / "bench.duckdb")
        if args.trace:
            tracemalloc.start()
        try:
            tournament = Tournament(config, store, "bench")
            start = time.perf_counter()
            summary = asyncio.run(tournament.run())
            store.writer.flush()  # durable: everything on disk before the clock stops
            elapsed = time.perf_counter() - start
            # What DuckDB holds (buffers, indexes) at the end, to tell it from our own memory.
            ((duckdb_bytes,),) = store.read(
                "select coalesce(sum(memory_usage_bytes), 0) from duckdb_memory()"
            )
            rss_now = _rss_bytes()
        finally:
            store.close()
    assert summary.failed == 0 and summary.done == summary.total, summary
    turns = getattr(summary, "steps", None) or getattr(summary, "turns", 0)
    return {
        "debates": summary.total,
        "turns": turns,
        "calls": summary.calls.calls,
        "seconds": elapsed,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "end_rss_mb": rss_now / 2**20,
        "duckdb_mb": duckdb_bytes / 2**20,
        "python_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if args.trace else None,
    }


def _rss_bytes() -> int:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bare_sim_turns(n_turns: int) -> float:
    """Turns/s of the simulated model alone, debate prompts included, no engine or store."""
    from arena.backends import GenerateSettings, create_backend
    from arena.config import load_tournament
    from arena.protocol.debate import Transcript

    with tempfile.TemporaryDirectory() as tmp:
        topics, models = _write_config(Path(tmp), 2, 1, 0.0, 8, 10)
        backend = create_backend(load_tournament(topics, models, {}).contestants[0])
    settings = GenerateSettings(max_tokens=512, seed=0)

    async def go() -> None:
        done = 0
        while done < n_turns:
            transcript = Transcript("This house supports proposal 0.", 10, 512)
            for index in range(1, 11):
                completion = await backend.generate(transcript.prompt_for(index), settings)
                transcript.add(index, completion.text)
            done += 10

    start = time.perf_counter()
    asyncio.run(go())
    return n_turns / (time.perf_counter() - start)


def skeleton(n_debates: int, calls: int, concurrency: int, latency: float) -> float:
    """Calls/s of the workload's shape alone: dependent sleeps under the same limits."""

    async def go() -> None:
        limit = asyncio.Semaphore(concurrency)
        window = asyncio.Semaphore(4 * concurrency)  # as the runner's window of units under way

        async def debate() -> None:
            try:
                for _ in range(calls):
                    async with limit:
                        await asyncio.sleep(latency)
            finally:
                window.release()

        tasks = []
        for _ in range(n_debates):
            await window.acquire()
            tasks.append(asyncio.create_task(debate()))
        await asyncio.gather(*tasks)

    start = time.perf_counter()
    asyncio.run(go())
    return n_debates * calls / (time.perf_counter() - start)


# --- the driver ----------------------------------------------------------------------------------


def measure(tree: Path, **shape: Any) -> dict[str, Any]:
    """Run one worker process on `tree` and return its figures."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    for key, value in shape.items():
        cmd += [f"--{key}", str(value)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker failed on {tree}:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline-ref", help="git commit of the engine to compare against")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: 1,2,3,4")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name, default in (("models", 8), ("topics", 40), ("concurrency", 64), ("turns", 10)):
        parser.add_argument(f"--{name}", type=int, default=default, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--trace", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    trees: dict[str, Path] = {"new": REPO}
    worktree: tempfile.TemporaryDirectory[str] | None = None
    if args.baseline_ref:
        worktree = tempfile.TemporaryDirectory(prefix="arena-bench-")
        path = Path(worktree.name) / "tree"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), args.baseline_ref],
            check=True,
            capture_output=True,
        )
        trees["old"] = path
    skip = set(args.skip.split(","))
    try:
        run(trees, args.quick, skip)
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(trees["old"])],
                check=False,
            )
            worktree.cleanup()


def run(trees: dict[str, Path], quick: bool, skip: set[str]) -> None:
    def each(**shape: Any) -> dict[str, dict[str, Any]]:
        return {name: measure(tree, **shape) for name, tree in trees.items()}

    if "1" not in skip:
        n_topics = 5 if quick else 40
        results = each(models=8, topics=n_topics, concurrency=64, latency=0.0, turns=10)
        bare = bare_sim_turns(2000 if quick else 10000)
        print(f"1. zero latency, 8 models x {n_topics} motions x 10 turns, durable writes")
        for name, r in results.items():
            rate = r["turns"] / r["seconds"]
            print(
                f"  {name:4} {rate:8.0f} turns/s ({r['turns']} turns in {r['seconds']:.2f} s); "
                f"{rate / bare:.2f} of the bare model"
            )
        print(f"  bare simulated model {bare:8.0f} turns/s (no engine, no store)")
        if "old" in results:
            new, old = (results[k]["turns"] / results[k]["seconds"] for k in ("new", "old"))
            print(f"  new / old = {new / old:.3f}  (goal: within 10%)")

    if "2" not in skip:
        n_topics = 4 if quick else 60
        latency_run(each, 8, n_topics, 512, 0.5)

    if "3" not in skip:
        print("3. peak resident memory, zero latency, 2 turns, concurrency 64")
        sizes = (2000, 8000) if quick else (20000, 80000)
        for debates in sizes:
            # 20 models play 380 debates a motion.
            n_topics = debates // 380 + (1 if debates % 380 else 0)
            results = each(models=20, topics=n_topics, concurrency=64, latency=0.0, turns=2)
            for name, r in results.items():
                ours = r["end_rss_mb"] - r["duckdb_mb"]
                print(
                    f"  {name:4} {r['debates']:6} debates: {r['max_rss_mb']:5.0f} MB peak; at the "
                    f"end {r['end_rss_mb']:5.0f} MB resident, of which DuckDB "
                    f"{r['duckdb_mb']:4.0f} MB, the rest {ours:4.0f} MB; {r['seconds']:.1f} s"
                )

    if "3" not in skip:
        print("3b. peak of Python's own allocations (tracemalloc, which slows the run), 2 turns")
        for debates in (2000, 8000) if quick else (5000, 20000):
            n_topics = debates // 380 + (1 if debates % 380 else 0)
            results = each(models=20, topics=n_topics, concurrency=64, turns=2, trace=1)
            for name, r in results.items():
                print(f"  {name:4} {r['debates']:6} debates: {r['python_peak_mb']:6.1f} MB")

    if "4" not in skip and not quick:
        latency_run(each, 20, 25, 4096, 0.5)


def latency_run(each: Any, n_models: int, n_topics: int, concurrency: int, latency: float) -> None:
    """Achieved calls/s against the ideal and the asyncio skeleton of the same workload."""
    results = each(models=n_models, topics=n_topics, concurrency=concurrency, latency=latency)
    ideal = concurrency / latency
    bare = skeleton(n_models * (n_models - 1) * n_topics, 11, concurrency, latency)
    print(f"latency {latency} s, concurrency {concurrency}, {n_models} models x {n_topics} motions")
    for name, r in results.items():
        achieved = r["calls"] / r["seconds"]
        print(
            f"  {name:4} {achieved:6.0f} calls/s = {achieved / ideal:.3f} of ideal ({ideal:.0f}/s),"
            f" {achieved / bare:.3f} of the skeleton"
        )
    print(f"  skeleton {bare:6.0f} calls/s = {bare / ideal:.3f} of ideal (asyncio, same workload)")


if __name__ == "__main__":
    main()
