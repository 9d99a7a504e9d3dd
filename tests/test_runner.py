"""The runner plays any task: a toy task (a few prompt -> response items) added here, in the test,
without touching arena/runner.py, is played, resumed, failed and budgeted like debates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb
import pytest

from arena.backends import GenerateSettings, Message, create_backend
from arena.backends.scripted import ScriptedSpec
from arena.config import RetrySettings
from arena.core.ids import content_id
from arena.runner import RunContext, Runner, Task
from arena.tasks import TASKS, register_task
from storage import Store

TOY_TABLE = """
CREATE TABLE IF NOT EXISTS toy_answers (
    item_id VARCHAR PRIMARY KEY, prompt VARCHAR NOT NULL, answer VARCHAR, status VARCHAR NOT NULL
)
"""


@dataclass(frozen=True)
class Item:
    item_id: str
    prompt: str


class ToyTask(Task[Item, str]):
    """Ask the model each item's prompt once; record the answer."""

    unit_name: ClassVar[str] = "item"
    step_name: ClassVar[str] = "answer"

    def __init__(self, store: Store):
        self.store = store

    def unit_id(self, unit: Item) -> str:
        return unit.item_id

    def register(self, units: Sequence[Item]) -> None:
        for u in units:
            row = {"item_id": u.item_id, "prompt": u.prompt, "answer": None, "status": "pending"}
            self.store.writer.insert("toy_answers", row, on_conflict="ignore")

    def recorded(self, units: Sequence[Item]) -> Mapping[str, str]:
        ids = [u.item_id for u in units]
        rows = self.store.read(
            "select item_id, status from toy_answers where item_id in (select unnest(?))", [ids]
        )
        return dict(rows)

    def finished(self, unit: Item, state: str | None) -> bool:
        return state == "done"

    async def play(self, unit: Item, state: str | None, ctx: RunContext) -> None:
        result = await ctx.caller.call(
            "toy-model",
            [Message("user", unit.prompt)],
            GenerateSettings(max_tokens=8, seed=0),
            purpose="answer",
            debate_id=unit.item_id,
            before_send=ctx.check_budget,
        )
        row = {"item_id": unit.item_id, "answer": result.completion.text, "status": "done"}
        self.store.writer.insert("toy_answers", row, on_conflict="update")
        ctx.progress.steps += 1

    def failed(self, unit: Item, error: str) -> None:
        self.store.writer.insert(
            "toy_answers", {"item_id": unit.item_id, "status": "failed"}, on_conflict="update"
        )

    def not_started(self, unit: Item) -> None:
        pass


def items(n: int) -> list[Item]:
    return [Item(content_id("toy", i), f"question {i}") for i in range(n)]


def open_store(db: Path) -> Store:
    """The store, with the toy task's table (a real task's tables come from a migration)."""
    with duckdb.connect(str(db)) as con:
        con.execute(TOY_TABLE)
    return Store.open(db)


def play(db: Path, plan: list[Item], log: Path, **spec: object) -> tuple[object, list[str]]:
    with open_store(db) as store:
        backend = create_backend(
            ScriptedSpec.model_validate(
                {
                    "name": "toy-model",
                    "backend": "scripted",
                    "replies": ["yes", "no"],
                    "log_file": str(log),
                    **spec,
                }
            )
        )
        runner = Runner(
            ToyTask(store),
            store,
            "toy-run",
            {"toy-model": backend},
            max_concurrency=4,
            request_timeout_s=10,
            retry=RetrySettings(max_attempts=1),
        )
        summary = asyncio.run(runner.run(iter(plan), len(plan)))
        answered = [
            r[0] for r in store.read("select item_id from toy_answers where answer is not null")
        ]
    return summary, answered


def test_a_toy_task_is_played_and_resumed_by_the_unchanged_runner(tmp_path: Path) -> None:
    db, log = tmp_path / "toy.duckdb", tmp_path / "requests.jsonl"
    plan = items(50)
    # Item 7's prompt makes the scripted model fail with a non-retryable error.
    summary, answered = play(db, plan, log, fail_if_contains="question 7")
    assert (summary.done, summary.failed, summary.total) == (49, 1, 50)  # type: ignore[attr-defined]
    assert sorted(answered) == sorted(i.item_id for i in plan if i.prompt != "question 7")
    assert len(log.read_text().splitlines()) == 50  # one request per item

    # A rerun asks only for what is not recorded: the failed item, once.
    log.unlink()
    summary, answered = play(db, plan, log)
    assert (summary.skipped, summary.done, summary.failed) == (49, 50, 0)  # type: ignore[attr-defined]
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(requests) == 1
    assert len(answered) == 50


def test_the_runner_streams_a_plan_longer_than_its_chunks(tmp_path: Path) -> None:
    """A plan read lazily in chunks of 1,024: every unit played once, in a fresh run."""
    db = tmp_path / "toy.duckdb"
    plan = items(2500)
    consumed: list[int] = []

    def lazily() -> object:
        for n, item in enumerate(plan):
            consumed.append(n)
            yield item

    with open_store(db) as store:
        spec = {"name": "toy-model", "backend": "scripted", "replies": ["ok"]}
        runner = Runner(
            ToyTask(store),
            store,
            "toy-run",
            {"toy-model": create_backend(ScriptedSpec.model_validate(spec))},
            max_concurrency=8,
            request_timeout_s=10,
            retry=RetrySettings(max_attempts=1),
        )
        summary = asyncio.run(runner.run(lazily(), len(plan)))  # type: ignore[arg-type]
        ((count,),) = store.read("select count(*) from toy_answers where status = 'done'")
    assert summary.done == 2500 and count == 2500
    assert consumed == list(range(2500))


def test_tasks_are_registered_by_name() -> None:
    assert "tournament" in TASKS
    register_task("toy", ToyTask)
    assert TASKS["toy"] is ToyTask
    with pytest.raises(ValueError, match="already registered"):
        register_task("toy", Task)  # type: ignore[type-abstract]
    del TASKS["toy"]
