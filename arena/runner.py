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

**The writer is the source of truth.** Every backend is wrapped so that no call is sent once the
store's writer has failed (a full disk, memory running out): its result could not be kept, and
with a paid API it would be money spent for nothing. The writer's failure also wakes the runner,
which starts no new unit, cancels the units in flight and raises the writer's `WriteError`; what
the writer kept is a prefix of what was queued (storage/writer.py), so every unit is either fully
recorded or resumable from its recorded rows. A unit whose play raises anything unexpected (a bug)
stops the run the same way, and the error is raised from `run`, never left in a task nobody awaits.

The summary's counts come from the store: as the units of a chunk of the plan settle, and once
more at the end (after the last rows are committed), `Task.tally` reads back which of them are
fully recorded; `RunSummary.done` is that count, never what the engine believes it sent.

Adding a kind of work means writing a `Task` (and a planner if round robin does not fit), never
editing this module.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

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
class Tally:
    """What the store holds for some units, read back by their task (`Task.tally`)."""

    finished: int = 0
    """Units whose every row is stored: nothing is left to do for them."""
    steps: int | None = None
    """Their steps (turns) stored, when the task counts them."""
    verdicts: int | None = None
    """Their verdicts stored, when the task counts them."""

    def add(self, other: Tally) -> None:
        self.finished += other.finished
        if other.steps is not None:
            self.steps = (self.steps or 0) + other.steps
        if other.verdicts is not None:
            self.verdicts = (self.verdicts or 0) + other.verdicts


@dataclass
class RunSummary:
    run_id: str
    unit: str
    step: str
    total: int
    done: int
    """Units the store confirms fully recorded (`Task.tally`), those of earlier sessions too."""
    failed: int
    skipped: int
    steps: int
    """Steps recorded in this session (all committed: the summary is made after the last flush)."""
    verdicts: int
    elapsed_s: float
    calls: CallStats
    errors: list[tuple[str, str]]
    not_started: int = 0
    """Units left unstarted because the budget was reached."""
    spent_usd: float = 0.0
    """What the run has spent in all, earlier sessions included."""
    stored_steps: int | None = None
    """Steps the store holds for the plan's units, when the task counts them."""
    stored_verdicts: int | None = None
    """Verdicts the store holds for the plan's units, when the task counts them."""

    @property
    def unconfirmed(self) -> int:
        """Units neither confirmed by the store, nor failed, nor left unstarted by the budget:
        played, yet not fully recorded. Zero unless something went wrong; a rerun completes them."""
        return max(self.total - self.done - self.failed - self.not_started, 0)


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

    def tally(self, units: Sequence[Unit]) -> Tally:
        """Read back from the store which of `units` are fully recorded (and, if the task counts
        them, their steps and verdicts). The runner calls it after the units' rows were queued;
        the read flushes the writer first.

        By default: `recorded` and `finished`, so a task is checked by the very test that decides
        resuming. Override it with a leaner query that also checks the rows' integrity (the
        debate task checks gap-free turns, each with its `calls` row, and every verdict).
        """
        states = self.recorded(units)
        finished = sum(self.finished(u, states.get(self.unit_id(u))) for u in units)
        return Tally(finished=finished)


class _Window:
    """Units under way at once, and the switch that stops a run.

    Like a semaphore with one waiter (the runner's loop), whose waits also end when `stop` is
    called: by the writer's failure (from its thread, through `call_soon_threadsafe`) or by a
    unit that raised. One future per wait, as cheap as `asyncio.Semaphore`.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.stopped = False
        self._waiter: asyncio.Future[None] | None = None

    async def _wait(self, ready: Callable[[], bool]) -> bool:
        while not self.stopped and not ready():
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return not self.stopped

    async def acquire(self) -> bool:
        """Take a place for a unit; False when the run was stopped instead."""
        if not await self._wait(lambda: self.free > 0):
            return False
        self.free -= 1
        return True

    async def drained(self) -> bool:
        """Wait until every unit has left; False when the run was stopped instead."""
        return await self._wait(lambda: self.free == self.size)

    def release(self) -> None:
        self.free += 1
        self._wake()

    def stop(self) -> None:
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


@dataclass
class _Chunk:
    """Units of one chunk of the plan that were played or skipped, for the read-back."""

    units: list[Any] = field(default_factory=list)
    running: int = 0
    """Units still under way: the chunk is read back once none is."""


class Limits(Protocol):
    """The settings a run's limits come from (every kind of run's settings have them)."""

    @property
    def max_concurrency(self) -> int: ...
    @property
    def request_timeout_s(self) -> float: ...
    @property
    def retry(self) -> RetrySettings: ...
    @property
    def budget_usd(self) -> float | None: ...


class Runner:
    """Plays one task's plan against one store."""

    @classmethod
    def for_task(
        cls,
        task: Task[Any, Any],
        store: Store,
        run_id: str,
        backends: dict[str, Backend],
        limits: Limits,
    ) -> Runner:
        """A runner with the limits of a run's settings (`Limits`)."""
        return cls(
            task,
            store,
            run_id,
            backends,
            max_concurrency=limits.max_concurrency,
            request_timeout_s=limits.request_timeout_s,
            retry=limits.retry,
            budget_usd=limits.budget_usd,
        )

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
            # No call is sent whose result the store could not keep: the writer's health is
            # checked just before every attempt, retries included.
            before_each=store.writer.check,
        )
        self.progress.calls = self.caller.stats
        self.ctx = RunContext(run_id, store, self.caller, self.progress, budget_usd)
        self._fatal: Exception | None = None

    def _record_call(self, row: CallRow) -> None:
        self.store.writer.insert(row.TABLE, row.row(), on_conflict="update")

    async def run(self, plan: Iterable[Any], total: int) -> RunSummary:
        """Play every unit of `plan` (`total` of them) that is not finished yet.

        Raises the writer's `WriteError` when the store fails (see the module doc), and whatever
        a unit raised unexpectedly; in both cases after the units in flight were cancelled.
        """
        progress = self.progress
        progress.total = total
        self._fatal = None
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
        window = _Window(max(4 * self.max_concurrency, 16))
        loop = asyncio.get_running_loop()
        unsubscribe = self.store.writer.on_failure(
            lambda _error: loop.call_soon_threadsafe(window.stop)
        )
        tasks: set[asyncio.Task[None]] = set()
        chunks: deque[_Chunk] = deque()
        stored = Tally()

        async def one(unit: Any, state: Any, chunk: _Chunk) -> None:
            try:
                await self._play(unit, state)
            except Exception as error:  # a write failure, or a bug in the task: stop the run
                self._fatal = self._fatal or error
                window.stop()
            finally:
                window.release()
                chunk.running -= 1

        try:
            iterator = iter(plan)
            while not window.stopped and (units := list(itertools.islice(iterator, CHUNK))):
                # In a thread: the read-back flushes the writer and queries, and the units under
                # way go on meanwhile (the store serialises its reads).
                await asyncio.to_thread(self._read_back, chunks, stored)
                self.task.register(units)
                states = self.task.recorded(units) if resuming else {}
                chunk = _Chunk()
                chunks.append(chunk)
                for unit in units:
                    state = states.get(self.task.unit_id(unit))
                    if self.task.finished(unit, state):
                        progress.skipped += 1
                        progress.done += 1
                        chunk.units.append(unit)
                        continue
                    if not await window.acquire():
                        break
                    chunk.units.append(unit)
                    chunk.running += 1
                    job = asyncio.create_task(one(unit, state, chunk))
                    tasks.add(job)
                    job.add_done_callback(tasks.discard)
            await window.drained()
        finally:
            unsubscribe()
            for job in tasks:
                job.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for backend in self.backends.values():
                await backend.aclose()
        if self._fatal is not None:
            raise self._fatal
        self.store.writer.check()  # stopped by the writer before any unit noticed
        # Every unit has settled: flush, and read back what the store holds.
        self._read_back(chunks, stored)
        return RunSummary(
            run_id=self.run_id,
            unit=progress.unit,
            step=progress.step,
            total=progress.total,
            done=stored.finished,
            failed=progress.failed,
            skipped=progress.skipped,
            steps=progress.steps,
            verdicts=progress.verdicts,
            elapsed_s=time.monotonic() - progress.started,
            calls=self.caller.stats,
            errors=self.errors,
            not_started=progress.not_started,
            spent_usd=self.ctx.spent_usd(),
            stored_steps=stored.steps,
            stored_verdicts=stored.verdicts,
        )

    def _read_back(self, chunks: deque[_Chunk], stored: Tally) -> None:
        """Count, from the store, what the chunks whose units have all settled hold (`Task.tally`)
        and forget them, so that only the chunks under way stay in memory."""
        while chunks and chunks[0].running == 0:
            chunk = chunks.popleft()
            if chunk.units:
                stored.add(self.task.tally(chunk.units))

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
