"""The runner: plays a task's units of work concurrently, within limits and budget, resumably.

It knows nothing of debates. A `Task` says what its units are and how to play one; a planner
(`arena.schedule`) says which units to run, as an iterable the runner reads as it goes. The runner:

- reads the plan in chunks: each chunk is registered (`Task.register`, idempotent), what the run
  already recorded for it is read (`Task.recorded`: only when the run existed before this
  session), finished units are skipped, the others are played;
- keeps a window of units under way, several times the global call limit (each unit has about
  one call pending at a time), so only the window, not the plan, is in memory;
- owns the `Caller` (limits, timeouts, retries, a `calls` row per attempt) and the budget: a unit
  whose first call would start after the run's spend reached `--budget-usd` is left unstarted;
- counts progress for the display, and on cancellation (Ctrl-C) cancels the units in flight:
  whatever they recorded stays recorded, and the next run continues from there.

Adding a kind of work means writing a `Task` (and a planner if round robin does not fit), never
editing this module.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from arena.backends import Backend
from arena.calling import Caller, CallStats
from arena.config import RetrySettings
from arena.core.errors import BackendError, BudgetReached
from arena.records import CallRow
from storage import Store

Unit = TypeVar("Unit")
State = TypeVar("State")

CHUNK = 1024
"""Units read from the plan, registered and looked up at a time."""


@dataclass
class Progress:
    """What the progress display shows; the runner and the task update it."""

    unit: str = "unit"
    """What a unit is called in messages ('debate')."""
    step: str = "step"
    """What a task's recorded steps are called ('turn')."""
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    not_started: int = 0
    steps: int = 0
    verdicts: int = 0
    started: float = field(default_factory=time.monotonic)
    calls: CallStats = field(default_factory=CallStats)

    def steps_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.steps / elapsed if elapsed > 0 else 0.0


@dataclass
class RunSummary:
    run_id: str
    unit: str
    step: str
    total: int
    done: int
    failed: int
    skipped: int
    steps: int
    verdicts: int
    elapsed_s: float
    calls: CallStats
    errors: list[tuple[str, str]]
    not_started: int = 0
    """Units left unstarted because the budget was reached."""
    spent_usd: float = 0.0
    """What the run has spent in all, earlier sessions included."""


@dataclass
class RunContext:
    """What a task's `play` may use."""

    run_id: str
    store: Store
    caller: Caller
    progress: Progress
    budget_usd: float | None
    prior_cost_usd: float = 0.0

    def spent_usd(self) -> float:
        """The run's spend so far: earlier sessions' calls and this one's."""
        return self.prior_cost_usd + self.caller.stats.cost_usd

    def check_budget(self) -> None:
        """Raise `BudgetReached` when the spend reached the budget (a unit's first call passes
        this as its `before_send`, so that units under way finish and no new one starts)."""
        if self.budget_usd is not None and self.spent_usd() >= self.budget_usd:
            raise BudgetReached(f"budget of ${self.budget_usd} reached")


class Task(ABC, Generic[Unit, State]):
    """A kind of work: what a unit is, how to play one, what it records."""

    unit_name: ClassVar[str] = "unit"
    step_name: ClassVar[str] = "step"

    @abstractmethod
    def unit_id(self, unit: Unit) -> str:
        """The unit's content-derived id."""

    @abstractmethod
    def register(self, units: Sequence[Unit]) -> None:
        """Record the units as planned; idempotent (a rerun registers them again)."""

    @abstractmethod
    def recorded(self, units: Sequence[Unit]) -> Mapping[str, State]:
        """What earlier sessions recorded for these units, by unit id (absent: nothing)."""

    @abstractmethod
    def finished(self, unit: Unit, state: State | None) -> bool:
        """Whether the unit needs no more work."""

    @abstractmethod
    async def play(self, unit: Unit, state: State | None, ctx: RunContext) -> None:
        """Play the unit to its end, recording as it goes. Raises `BackendError` when a call
        gives up, `BudgetReached` when its first call would pass the budget."""

    @abstractmethod
    def failed(self, unit: Unit, error: str) -> None:
        """Record that the unit failed (a rerun retries it)."""

    @abstractmethod
    def not_started(self, unit: Unit) -> None:
        """Record that the budget left the unit unstarted."""


class Runner:
    """Plays one task's plan against one store."""

    def __init__(
        self,
        task: Task[Any, Any],
        store: Store,
        run_id: str,
        backends: dict[str, Backend],
        *,
        max_concurrency: int,
        request_timeout_s: float,
        retry: RetrySettings,
        budget_usd: float | None = None,
    ):
        self.task = task
        self.store = store
        self.run_id = run_id
        self.backends = backends
        self.max_concurrency = max_concurrency
        self.progress = Progress(unit=task.unit_name, step=task.step_name)
        self.errors: list[tuple[str, str]] = []
        self.caller = Caller(
            backends,
            max_concurrency=max_concurrency,
            request_timeout_s=request_timeout_s,
            retry=retry,
            record=self._record_call,
            run_id=run_id,
        )
        self.progress.calls = self.caller.stats
        self.ctx = RunContext(run_id, store, self.caller, self.progress, budget_usd)

    def _record_call(self, row: CallRow) -> None:
        self.store.writer.insert(row.TABLE, row.row(), on_conflict="update")

    async def run(self, plan: Iterable[Any], total: int) -> RunSummary:
        """Play every unit of `plan` (`total` of them) that is not finished yet."""
        progress = self.progress
        progress.total = total
        ((cost, calls),) = self.store.read(
            "select coalesce(sum(cost_usd), 0), count(*) from calls where run_id = ?",
            [self.run_id],
        )
        self.ctx.prior_cost_usd = float(cost)
        # A run that made no call before has nothing recorded to look up.
        resuming = calls > 0
        # Units under way at once. Each has one call pending at a time, so the window must be
        # well above the call limit to keep every slot busy: measured at 512 slots x 0.5 s,
        # 2x the limit kept 93% of them busy, 4x kept 98%.
        window = asyncio.Semaphore(max(4 * self.max_concurrency, 16))
        tasks: set[asyncio.Task[None]] = set()

        async def one(unit: Any, state: Any) -> None:
            try:
                await self._play(unit, state)
            finally:
                window.release()

        try:
            iterator = iter(plan)
            while chunk := list(itertools.islice(iterator, CHUNK)):
                self.task.register(chunk)
                states = self.task.recorded(chunk) if resuming else {}
                for unit in chunk:
                    state = states.get(self.task.unit_id(unit))
                    if self.task.finished(unit, state):
                        progress.skipped += 1
                        progress.done += 1
                        continue
                    await window.acquire()
                    job = asyncio.create_task(one(unit, state))
                    tasks.add(job)
                    job.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
        finally:
            for job in tasks:
                job.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for backend in self.backends.values():
                await backend.aclose()
        return RunSummary(
            run_id=self.run_id,
            unit=progress.unit,
            step=progress.step,
            total=progress.total,
            done=progress.done,
            failed=progress.failed,
            skipped=progress.skipped,
            steps=progress.steps,
            verdicts=progress.verdicts,
            elapsed_s=time.monotonic() - progress.started,
            calls=self.caller.stats,
            errors=self.errors,
            not_started=progress.not_started,
            spent_usd=self.ctx.spent_usd(),
        )

    async def _play(self, unit: Any, state: Any) -> None:
        try:
            await self.task.play(unit, state, self.ctx)
        except BudgetReached:
            self.task.not_started(unit)
            self.progress.not_started += 1
            return
        except BackendError as error:
            message = f"{type(error).__name__} ({error.kind}): {error}"
            self.task.failed(unit, message[:2000])
            self.errors.append((self.task.unit_id(unit), message))
            self.progress.failed += 1
            return
        self.progress.done += 1
