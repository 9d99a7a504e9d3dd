"""Tasks: the kinds of work the runner plays, one module each, registered by name.

A task (`arena.runner.Task`) says what its units are, how to play one and what it records.
Today: `debate` (runs of kind `tournament`), `bbq` (one answer to one BBQ item) and `pcp`
(both prompts of a political pair, answered and judged). A new kind
of work (paired political prompts, compass statements) is a new module here and one
`register_task` line; the runner does not change.
"""

from __future__ import annotations

from typing import Any

from arena.runner import Task

TASKS: dict[str, type[Task[Any, Any]]] = {}
"""Task classes by the name runs record (`runs.kind`)."""


def register_task(name: str, task: type[Task[Any, Any]]) -> None:
    """Make `task` known as `name`; a name is registered once."""
    if TASKS.get(name, task) is not task:
        raise ValueError(f"a task named {name!r} is already registered")
    TASKS[name] = task


def _register_builtin() -> None:
    from arena.tasks.bbq import BBQTask
    from arena.tasks.debate import DebateTask
    from arena.tasks.pcp import PCPTask
    from arena.tasks.pcp_train import PCTTask

    register_task("tournament", DebateTask)
    register_task("bbq", BBQTask)
    register_task("pcp", PCPTask)
    register_task("pcp_train", PCTTask)


_register_builtin()
