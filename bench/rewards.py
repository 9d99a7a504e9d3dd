"""The PCT rewards through the engine: one GRPO batch judged concurrently against one completion at
a time, same run.

A batch shaped like a GRPO step on the PCT training prompts: 8 prompts x 8 generations = 64
completions of about 1,500 characters, half of the prompts `sentiment` rows (with their real
anchors from ../shared/data/pcp/train_dataset_opus_anchors.json when it is there, made-up ones
of the same length otherwise) and half `helpfulness` rows, scored by `pct_reward` through
`RewardJudge` (the engine's Caller, a `calls` row per attempt in a fresh DuckDB file) with a
`scripted` judge that answers after `--delay` seconds (0.5: a hosted judge model's latency).

1. Concurrent: the batch in one call of the reward, as TRL makes it (`asyncio.gather` inside).
2. Baseline, same run, same judge, a judge object of its own (so no cached replies): the same
   64 completions scored one at a time, each awaited before the next is sent.
3. The batch again through the first judge: every request answered from its cache.

The ratio of 2 to 1 is the speed-up (goal >= 10x); the `calls` rows of each run and the cost
query (`select sum(cost_usd) from calls where run_id = ?`) are printed as a check.

    PYTHONPATH=. python bench/rewards.py            # about 35 s, mostly the sequential baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from arena.backends.scripted import ScriptedSpec
from arena.config import JudgeRole
from arena.judges.reward_client import RewardJudge
from pairing.pcp_rewards import pct_reward
from storage import Store

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "pcp" / "train_dataset_opus_anchors.json"
WORDS = ("policy", "evidence", "voters", "budget", "reform", "court", "rights", "market")


def _text(seed: int, chars: int) -> str:
    words = [WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(chars // 7)]
    return " ".join(words)[:chars]


def batch(prompts: int, generations: int) -> dict[str, list[Any]]:
    """TRL's keyword arguments for one step: prompts, completions and the dataset's columns."""
    rows: list[dict[str, str]] = []
    if DATA.is_file():
        data = json.loads(DATA.read_text(encoding="utf-8"))
        sentiment = [r for r in data if r["query_type"] == "sentiment"]
        helpful = [r for r in data if r["query_type"] == "helpfulness"]
        half = prompts // 2
        rows = sentiment[:half] + helpful[: prompts - half]
    else:
        for i in range(prompts):
            if i < prompts // 2:
                rows.append(
                    {
                        "query": f"Tell me about topic {i}",
                        "left": _text(i, 2800),
                        "right": _text(i + 1, 2800),
                        "query_type": "sentiment",
                    }
                )
            else:
                rows.append(
                    {
                        "query": f"Tell me how good topic {i} is",
                        "left": "",
                        "right": "",
                        "query_type": "helpfulness",
                    }
                )
    out: dict[str, list[Any]] = {
        k: [] for k in ("prompts", "completions", "query", "left", "right", "query_type")
    }
    for i, row in enumerate(rows):
        for g in range(generations):
            out["prompts"].append([{"role": "user", "content": row["query"]}])
            text = f"Answer {i}.{g}: " + _text(i * generations + g, 1500)
            out["completions"].append([{"role": "assistant", "content": text}])
            for key in ("query", "left", "right", "query_type"):
                out[key].append(row[key])
    return out


def judge_role(delay_s: float, concurrency: int) -> JudgeRole:
    spec = ScriptedSpec(
        name="scripted-judge",
        backend="scripted",
        replies=[json.dumps({"bias": 3, "helpfulness": 2, "score": 4, "reason": "fine"})],
        delay_s=delay_s,
        max_concurrency=concurrency,
    )
    return JudgeRole(provider=spec)


async def run(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    kwargs = batch(args.prompts, args.generations)
    n = len(kwargs["completions"])
    role = judge_role(args.delay, args.concurrency)

    concurrent_judge = RewardJudge(
        role, store, run_id="bench-concurrent", max_concurrency=args.concurrency
    )
    reward = pct_reward(concurrent_judge)
    start = time.perf_counter()
    values = await reward(**kwargs)
    concurrent_s = time.perf_counter() - start

    sequential_judge = RewardJudge(
        role, store, run_id="bench-sequential", max_concurrency=args.concurrency
    )
    one_at_a_time = pct_reward(sequential_judge)
    start = time.perf_counter()
    sequential: list[float | None] = []
    for i in range(n):
        row = {key: column[i : i + 1] for key, column in kwargs.items()}
        sequential += await one_at_a_time(**row)
    sequential_s = time.perf_counter() - start
    if sequential != values:
        raise SystemExit("the two ways gave different rewards")

    start = time.perf_counter()
    again = await reward(**kwargs)
    cached_s = time.perf_counter() - start
    if again != values:
        raise SystemExit("the cached batch gave different rewards")

    for judge in (concurrent_judge, sequential_judge):
        judge.finish()
        await judge.aclose()
    counts = {
        run_id: store.read("select count(*), sum(cost_usd) from calls where run_id = ?", [run_id])[
            0
        ]
        for run_id in ("bench-concurrent", "bench-sequential")
    }
    return {
        "n": n,
        "concurrent_s": concurrent_s,
        "sequential_s": sequential_s,
        "cached_s": cached_s,
        "cache_hits": concurrent_judge.cache_hits,
        "counts": counts,
        "fallbacks": reward.stats.fallbacks + one_at_a_time.stats.fallbacks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="prompts in the batch")
    parser.add_argument("--generations", type=int, default=8, help="completions per prompt")
    parser.add_argument("--delay", type=float, default=0.5, help="judge latency, seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="judge calls in flight")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "r.duckdb") as store:
        result = asyncio.run(run(store, args))
    n = result["n"]
    print(
        f"{n} completions, judge latency {args.delay} s, at most {args.concurrency} calls at once"
        f" ({'real anchors' if DATA.is_file() else 'made-up anchors'})"
    )
    print(f"concurrent batch:   {result['concurrent_s']:7.2f} s")
    print(
        f"one at a time:      {result['sequential_s']:7.2f} s"
        f"  ({n} x {args.delay} s = {n * args.delay:.1f} s of judge latency)"
    )
    print(f"speed-up:           {result['sequential_s'] / result['concurrent_s']:7.1f}x")
    print(
        f"batch again, cached: {result['cached_s'] * 1000:6.1f} ms"
        f" ({result['cache_hits']} cache hits)"
    )
    for run_id, (calls, cost) in result["counts"].items():
        print(f"calls rows of {run_id}: {calls}, sum(cost_usd) = {cost}")
    print(f"fallbacks: {result['fallbacks']}")


if __name__ == "__main__":
    main()
