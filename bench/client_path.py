"""Client path: calls/s of three OpenAI-compatible clients against the same instant local server.

The server (`python -m tests.openai_server`, no delay, no faults) runs in a separate process, so
that it does not take the measured client's CPU in-process. Each client makes the same number of
chat-completions calls at concurrency 50 (50 workers, each one call at a time), after a warm-up:

- litellm `acompletion` (model "openai/<name>", `api_base`, `num_retries=0`), the path a
  `litellm` backend takes;
- the openai SDK's `AsyncOpenAI` (`max_retries=0`);
- our `vllm-server` backend (`arena/backends/openai_http.py`), called as the engine calls it.

Printed: calls/s for each and the ratio of ours to litellm. Goal: ours >= 1,000 calls/s and >= 5x
litellm.

    python bench/client_path.py                              # 3 rounds of 3,000 calls each
    python bench/client_path.py --calls 500 --rounds 1       # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# litellm must not fetch its cost map over the network when it is imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from arena.backends.base import GenerateSettings, Message
from arena.backends.openai_http import VllmServerBackend, VllmServerSpec

REPO = Path(__file__).resolve().parents[1]
MODEL = "bench-model"
CONCURRENCY = 50

Call = Callable[[int], Awaitable[str]]


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The test server in its own process; returns it and its API base once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", "--port", "0"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"the test server did not start: {line!r}")
    return process, line.removeprefix("listening on ")


def messages_for(i: int) -> list[Message]:
    return [
        Message("system", "You argue FOR the motion in a formal debate."),
        Message("user", f"Opening statement number {i}, please."),
    ]


async def measure(call: Call, calls: int, warmup: int) -> tuple[float, float]:
    """(calls/s, client CPU microseconds per call) of `call` with CONCURRENCY workers."""

    async def run(total: int) -> None:
        counter = iter(range(total))

        async def worker() -> None:
            for i in counter:
                await call(i)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    await run(warmup)
    start, cpu = time.perf_counter(), time.process_time()
    await run(calls)
    elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
    return calls / elapsed, cpu_used / calls * 1e6


async def bench_ours(api_base: str, calls: int, warmup: int) -> tuple[float, float]:
    spec = VllmServerSpec(
        name="ours", backend="vllm-server", model=MODEL, api_base=api_base, max_concurrency=64
    )
    backend = VllmServerBackend(spec)
    settings = GenerateSettings(max_tokens=64, temperature=0.7, seed=0)

    async def call(i: int) -> str:
        return (await backend.generate(messages_for(i), settings)).text

    try:
        return await measure(call, calls, warmup)
    finally:
        await backend.aclose()


async def bench_openai(api_base: str, calls: int, warmup: int) -> tuple[float, float]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=api_base, api_key="unused", max_retries=0)

    async def call(i: int) -> str:
        response = await client.chat.completions.create(
            model=MODEL,
            messages=[m.as_dict() for m in messages_for(i)],  # type: ignore[misc]
            max_tokens=64,
            temperature=0.7,
            seed=0,
        )
        return response.choices[0].message.content or ""

    try:
        return await measure(call, calls, warmup)
    finally:
        await client.close()


async def bench_litellm(api_base: str, calls: int, warmup: int) -> tuple[float, float]:
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False

    async def call(i: int) -> str:
        response: Any = await litellm.acompletion(
            model=f"openai/{MODEL}",
            api_base=api_base,
            api_key="unused",
            messages=[m.as_dict() for m in messages_for(i)],
            max_tokens=64,
            temperature=0.7,
            seed=0,
            num_retries=0,
        )
        return str(response.choices[0].message.content)

    return await measure(call, calls, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per client")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args()
    benches = {
        "litellm acompletion": bench_litellm,
        "openai AsyncOpenAI": bench_openai,
        "vllm-server (ours)": bench_ours,
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in benches}
    server, api_base = start_server()
    try:
        # Clients take turns within each round, so that noise from a shared machine falls on all.
        for _ in range(args.rounds):
            for name, bench in benches.items():
                samples[name].append(asyncio.run(bench(api_base, args.calls, args.warmup)))
    finally:
        server.terminate()
        server.wait(timeout=10)
    results = {
        name: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in samples.items()
    }
    base = results["litellm acompletion"][0]
    print(
        f"{args.calls} calls per client and round at concurrency {CONCURRENCY}, server in another"
        f" process; medians of {args.rounds} rounds"
    )
    for name, (rate, cpu_us) in results.items():
        print(
            f"  {name:22s} {rate:8,.0f} calls/s   {rate / base:5.2f}x litellm"
            f"   {cpu_us:7,.0f} us client CPU per call"
        )
    ours = results["vllm-server (ours)"][0]
    goal = ours >= 1000 and ours >= 5 * base
    print(f"goal (ours >= 1,000 calls/s and >= 5x litellm): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
