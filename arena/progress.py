"""The live progress display of a tournament.

On a terminal: a rich progress bar with units (debates) done/total, steps (turns)/s, tokens,
cost, failures and ETA, refreshed twice a second. Elsewhere (CI logs, pipes): one plain status
line every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from arena.runner import Progress as EngineProgress


def status_line(p: EngineProgress) -> str:
    c = p.calls
    tokens = c.prompt_tokens + c.completion_tokens
    return (
        f"{p.unit}s {p.done + p.failed}/{p.total} (failed {p.failed}) | {p.step}s {p.steps} "
        f"({p.steps_per_s():.1f}/s) | verdicts {p.verdicts} | tokens {tokens:,} | "
        f"cost ${c.cost_usd:.4f} | retried {c.failed_attempts}"
    )


@contextlib.asynccontextmanager
async def show_progress(
    progress: EngineProgress, console: Console, *, enabled: bool = True, every_s: float = 5.0
) -> AsyncIterator[None]:
    """Display `progress` while the body runs."""
    if not enabled:
        yield
        return
    if console.is_terminal:
        bar = Progress(
            TextColumn(f"[bold]{progress.unit}s"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        task = bar.add_task(progress.unit, total=progress.total or None, info="")

        def refresh() -> None:
            c = progress.calls
            info = (
                f"{progress.steps_per_s():.1f} {progress.step}s/s | "
                f"{c.prompt_tokens + c.completion_tokens:,} tok | ${c.cost_usd:.4f} | "
                f"failed {progress.failed} | retries {c.failed_attempts}"
            )
            bar.update(
                task,
                total=progress.total or None,
                completed=progress.done + progress.failed,
                info=info,
            )

        async def tick() -> None:
            while True:
                refresh()
                await asyncio.sleep(0.5)

        with bar:
            ticker = asyncio.create_task(tick())
            try:
                yield
            finally:
                ticker.cancel()
                refresh()
        return

    async def log() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            if time.monotonic() - last >= every_s:
                console.print(status_line(progress), highlight=False)
                last = time.monotonic()

    logger = asyncio.create_task(log())
    try:
        yield
    finally:
        logger.cancel()
