"""Micro-batching in the local backend: 8 concurrent requests, one at a time vs gathered.

Eight requests of 128 new tokens (greedy, prompts that ask for long answers) go through
`LocalBackend.generate`, first one after the other, then all at once so that the backend gathers
them into one generate call. Both ways generate the same tokens (greedy decoding, batch-invariant
on the CPU), so tokens/s compare like with like. Goal: batched >= 4x sequential.

Each way runs `--rounds` times, alternating, and the best round of each is reported: the machines
are shared, and the best round is the one least disturbed by other work.

    python bench/local_batching.py                 # bfloat16, 8 requests x 128 tokens
    python bench/local_batching.py --dtype float32 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from arena.backends import GenerateSettings, Message
from arena.backends.local import LocalBackend, LocalSpec

TOPICS = ("bread", "ships", "rain", "clocks", "paper", "salt", "bridges", "music")


def _requests(n: int) -> list[list[Message]]:
    return [
        [Message("user", f"Write a long, detailed essay on the history of {TOPICS[i % 8]}.")]
        for i in range(n)
    ]


async def _sequential(
    backend: LocalBackend, requests: list[list[Message]], settings: GenerateSettings
) -> tuple[int, float]:
    started = time.perf_counter()
    tokens = 0
    for messages in requests:
        tokens += (await backend.generate(messages, settings)).completion_tokens or 0
    return tokens, time.perf_counter() - started


async def _together(
    backend: LocalBackend, requests: list[list[Message]], settings: GenerateSettings
) -> tuple[int, float]:
    started = time.perf_counter()
    done = await asyncio.gather(*(backend.generate(m, settings) for m in requests))
    return sum(c.completion_tokens or 0 for c in done), time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    spec = LocalSpec(
        name="bench",
        backend="local",
        dtype=args.dtype,
        max_batch=args.requests,
        threads=args.threads,
    )
    backend = LocalBackend(spec)
    settings = GenerateSettings(max_tokens=args.tokens, temperature=0)
    requests = _requests(args.requests)
    started = time.perf_counter()
    await backend.generate(requests[0], GenerateSettings(max_tokens=4, temperature=0))
    print(f"load and warm-up: {time.perf_counter() - started:.1f} s")
    best = {"sequential": 0.0, "batched": 0.0}
    for round_ in range(1, args.rounds + 1):
        for name, way in (("sequential", _sequential), ("batched", _together)):
            calls = backend.generate_calls
            tokens, seconds = await way(backend, requests, settings)
            rate = tokens / seconds
            best[name] = max(best[name], rate)
            print(
                f"round {round_} {name:>10}: {tokens} tokens in {seconds:5.1f} s = "
                f"{rate:6.1f} tokens/s, {backend.generate_calls - calls} generate calls "
                f"(load average {os.getloadavg()[0]:.2f})"
            )
    ratio = best["batched"] / best["sequential"]
    print(
        f"best: sequential {best['sequential']:.1f} tokens/s, batched {best['batched']:.1f} "
        f"tokens/s, ratio {ratio:.2f}x (goal >= 4x) [{args.dtype}, {args.requests} requests x "
        f"{args.tokens} tokens, threads {args.threads or 'default'}]"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--dtype", choices=("auto", "bfloat16", "float32", "float16"), default="auto"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    asyncio.run(main(parser.parse_args()))
