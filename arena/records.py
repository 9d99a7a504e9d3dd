"""Typed rows: what the runner and its tasks hand to the store's writer.

One dataclass per kind of row, its fields named and typed as the table's columns
(storage/migrations, docs/schema.md), and `TABLE` naming the table it goes to. `Record.row()`
gives the writer its mapping; it is a shallow `vars()`, cheap enough for thousands of rows a
second. A row that updates another (a debate's status) lists only the columns it sets, always
the same ones, so that the writer merges a batch's updates to one row into one statement.

Simplified on purpose: no validation beyond the type hints (mypy checks them); the writer checks
columns against the catalog, so a misspelt field fails loudly at the first write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar


class Record:
    """A row for the writer."""

    TABLE: ClassVar[str]

    def row(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class DebateRow(Record):
    """A planned debate, written once (pending) when the runner reaches it."""

    TABLE: ClassVar[str] = "debates"
    debate_id: str
    run_id: str
    topic_id: str
    for_model: str
    against_model: str
    replicate: int
    turns_planned: int
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass
class DebateStatus(Record):
    """An update of a debate's status (and its winner or error)."""

    TABLE: ClassVar[str] = "debates"
    debate_id: str
    status: str
    winner: str | None
    error: str | None
    updated_at: datetime


@dataclass
class TurnRow(Record):
    TABLE: ClassVar[str] = "turns"
    debate_id: str
    turn_index: int
    side: str
    role: str
    model: str
    text: str
    raw_text: str
    reasoning: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float | None
    finish_reason: str | None
    call_id: str
    created_at: datetime


@dataclass
class VerdictRow(Record):
    """One verdict of one judge on one debate, under one presentation (`variant`)."""

    TABLE: ClassVar[str] = "verdicts"
    debate_id: str
    judge: str
    variant: str
    """How the judge was shown the debate: 'sides', 'for_a', 'for_b', or 'both' (averaged)."""
    counts: bool
    """Whether this verdict counts towards the debate's winner (one per judge and debate)."""
    winner: str | None
    rationale: str | None
    valid: bool
    repaired: bool
    raw_text: str
    prob_for: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float | None
    created_at: datetime


@dataclass
class CallRow(Record):
    """One attempt at one model call, failed or not."""

    TABLE: ClassVar[str] = "calls"
    call_id: str
    request_hash: str
    attempt: int
    run_id: str
    debate_id: str | None
    purpose: str
    model: str
    started_at: datetime
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    retryable: bool | None = None
