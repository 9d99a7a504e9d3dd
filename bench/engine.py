"""Engine throughput, measured against baselines taken in the same run.

1. Zero-latency simulated models, durable writes: turns/s through the whole engine (planning,
   prompts, retries wrapper, concurrency limits, think stripping, judging, the DuckDB writer).
   Baseline: the same simulated turns generated in a bare loop (no engine, no store), so the
   ratio is the share of time the engine leaves to the models. Goal: >= 2,000 turns/s.
2. 0.5 s simulated latency at concurrency 512: achieved calls/s divided by the ideal
   512 / 0.5 s = 1,024 calls/s. Goal: >= 0.95. Baseline: a bare asyncio skeleton of the same
   workload (the same debates of 11 dependent calls, the same limits, each call only a sleep),
   which shows how much of the gap is the workload's own tail (the last debates cannot use all
   512 slots) and how much is the engine.

    python bench/engine.py            # both
    python bench/engine.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from arena.backends import GenerateSettings
from arena.backends.sim import SimBackend, SimJudgeSpec, SimSpec
from arena.config import Topic, TournamentConfig, TournamentSettings
from arena.engine import Tournament
from arena.protocol.debate import Transcript
from storage import Store


def _config(n_models: int, n_topics: int, latency: float, concurrency: int) -> TournamentConfig:
    contestants = [
        SimSpec(
            name=f"m{i}",
            backend="sim",
            skill=i / n_models,
            latency_s=latency,
            max_concurrency=concurrency,
        )
        for i in range(n_models)
    ]
    judge = SimJudgeSpec(
        name="judge", backend="sim", latency_s=latency, max_concurrency=concurrency
    )
    topics = [
        Topic(id=f"t{i}", motion=f"This house supports proposal {i}.") for i in range(n_topics)
    ]
    return TournamentConfig(
        settings=TournamentSettings(max_concurrency=concurrency, turns=10),
        topics=topics,
        contestants=list(contestants),
        judges=[judge],
        topics_path=Path("bench-topics.yaml"),
        models_path=Path("bench-models.yaml"),
    )


def run_engine(config: TournamentConfig) -> tuple[int, int, float]:
    """(turns, calls, seconds) for a whole tournament into a fresh database."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "bench.duckdb")
        try:
            tournament = Tournament(config, store, "bench")
            start = time.perf_counter()
            summary = asyncio.run(tournament.run())
            store.writer.flush()  # durable: everything on disk before the clock stops
            elapsed = time.perf_counter() - start
        finally:
            store.close()
    assert summary.failed == 0 and summary.done == summary.total
    return summary.turns, summary.calls.calls, elapsed


def bare_sim_turns(n_turns: int) -> float:
    """Turns/s of the simulated model alone, debate prompts included, no engine or store."""
    backend = SimBackend(SimSpec(name="m", backend="sim", skill=0.5))
    settings = GenerateSettings(max_tokens=512, seed=0)

    async def go() -> None:
        done = 0
        while done < n_turns:
            transcript = Transcript("This house supports proposal 0.", 10, 512)
            for index in range(1, 11):
                messages = transcript.prompt_for(index)
                completion = await backend.generate(messages, settings)
                transcript.add(index, completion.text)
            done += 10

    start = time.perf_counter()
    asyncio.run(go())
    return n_turns / (time.perf_counter() - start)


def skeleton(n_debates: int, calls: int, concurrency: int, latency: float) -> float:
    """Calls/s of the workload's shape alone: dependent sleeps under the same limits."""

    async def go() -> None:
        limit = asyncio.Semaphore(concurrency)
        window = asyncio.Semaphore(4 * concurrency)  # as the engine's window of active debates

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    n_topics = 5 if args.quick else 40
    turns, calls, elapsed = run_engine(_config(8, n_topics, 0.0, 64))
    engine_rate = turns / elapsed
    bare_rate = bare_sim_turns(2000 if args.quick else 10000)
    print(f"zero latency: {turns} turns, {calls} calls in {elapsed:.2f} s")
    print(f"  engine   {engine_rate:8.0f} turns/s  (goal >= 2,000)")
    print(f"  baseline {bare_rate:8.0f} turns/s  (bare simulated model, no engine, no store)")
    print(f"  ratio engine / baseline = {engine_rate / bare_rate:.2f}")

    concurrency, latency = 512, 0.5
    n_topics = 4 if args.quick else 60
    turns, calls, elapsed = run_engine(_config(8, n_topics, latency, concurrency))
    ideal = concurrency / latency
    achieved = calls / elapsed
    bare = skeleton(8 * 7 * n_topics, 11, concurrency, latency)
    print(f"latency {latency} s, concurrency {concurrency}: {calls} calls in {elapsed:.1f} s")
    print(f"  engine   {achieved:6.0f} calls/s; ideal {ideal:.0f} calls/s")
    print(f"  baseline {bare:6.0f} calls/s  (asyncio skeleton of the same workload)")
    print(f"  ratio achieved / ideal = {achieved / ideal:.3f}  (goal >= 0.95)")
    print(f"  ratio achieved / skeleton = {achieved / bare:.3f}")


if __name__ == "__main__":
    main()
