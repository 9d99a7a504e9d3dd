"""Choosing the run a report is about: the one named, or the file's only run of that kind.

Shared by the reports that read one run of a kind at a time (`eval.bbq_store`, `eval.pcp_store`);
a user's mistake (an unknown run, no run, several runs without `--run`) is one `UserError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from arena.core.errors import UserError


def choose_run(
    db: str | os.PathLike[str],
    runs: Sequence[Sequence[Any]],
    run_id: str | None,
    kind: str,
    command: str,
) -> tuple[Any, ...]:
    """The row of `runs` (each starting with its run id) named `run_id`, or the only one;
    `kind` names the runs in messages ('BBQ') and `command` the command that records one.

    >>> choose_run("x.duckdb", [("r1", "complete")], None, "PCP", "arena pcp run")
    ('r1', 'complete')
    """
    names = [str(r[0]) for r in runs]
    if run_id is not None:
        for row in runs:
            if row[0] == run_id:
                return tuple(row)
        known = f" ({kind} runs: {', '.join(names)})" if names else ""
        raise UserError(f"{db}: no {kind} run {run_id!r}{known}")
    if not runs:
        raise UserError(f"{db}: no {kind} run in this file ({command} records one)")
    if len(runs) > 1:
        raise UserError(
            f"{db}: it holds {len(runs)} {kind} runs; choose one with --run: " + ", ".join(names)
        )
    return tuple(runs[0])
