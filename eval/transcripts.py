"""Debates as recorded, for reading: `arena show` picks debates and reads each one whole.

Top to bottom: the typed rows (`DebateRow`, `Turn`, `Verdict`: named tuples of the columns of
the `debates`, `turns` and `verdicts` tables, one field per column, values as
`storage.run_query` returns them, timestamps as ISO text; built as read, without checks, since a
15,000-debate `arena view` reads 225,000 of them) and `DebateTranscript`, one debate with its
motion, its turns in order and its judges' verdicts; `Selection`, what to show (debate ids or
prefixes, or filters by run, topic, model, winner and judge disagreement, with a limit), and
`selection_sql`, the pure SQL for it; `select_debates`, which checks the selection against the
file (an unknown run, topic, model or id is one `UserError` naming the option) and returns the
ids in a stable order; `read_transcripts`, which reads the chosen debates in three queries per
chunk.

Everything goes through `storage.run_query` with bound parameters, so it reads a file that a
tournament is writing (its live server answers; a debate still being played shows the turns
recorded so far) as well as a finished one.

A debate's judges disagree (`Selection.judge_disagrees`) when its valid readings, every
variant except the combined `both`, do not all name the same winner: two judges that differ,
or a swap-check judge whose two label orders differ.

Simplified on purpose: a selection is sorted by run, topic, FOR model, AGAINST model and
replicate, not by anything a user may want to rank by; `--limit` cuts that order.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from arena.core.errors import UserError
from storage import run_query

if TYPE_CHECKING:
    import duckdb

SCHEMA_VERSION: Final = 1
"""Version of the JSON document of `arena show --format json`."""

CHUNK: Final = 200
"""Debates read per query: their turns and verdicts stay far below the live read limits."""

SIDES: Final = ("FOR", "AGAINST", "TIE")

VARIANTS: Final = {
    "sides": "speakers labelled FOR and AGAINST",
    "for_a": "neutral labels, FOR shown as Debater A",
    "for_b": "neutral labels, FOR shown as Debater B (swapped)",
    "both": "both label orders combined",
}
"""What each `verdicts.variant` means, as the renderers say it."""


def _iso(value: object) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


class DebateRow(NamedTuple):
    """A row of `debates`."""

    debate_id: str
    run_id: str
    topic_id: str
    for_model: str
    against_model: str
    replicate: int
    turns_planned: int
    status: str
    winner: str | None
    error: str | None
    created_at: str
    updated_at: str


class Turn(NamedTuple):
    """A row of `turns`."""

    debate_id: str
    turn_index: int
    side: str
    role: str
    model: str
    text: str
    raw_text: str | None
    reasoning: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float | None
    finish_reason: str | None
    call_id: str | None
    created_at: str


class Verdict(NamedTuple):
    """A row of `verdicts`."""

    debate_id: str
    judge: str
    variant: str
    counts: bool
    winner: str | None
    rationale: str | None
    valid: bool
    repaired: bool
    raw_text: str | None
    prob_for: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float | None
    created_at: str


class DebateTranscript(NamedTuple):
    """One debate as `arena show` shows it: its row, its topic, its turns and verdicts."""

    debate: DebateRow
    motion: str | None
    category: str | None
    turns: list[Turn]
    verdicts: list[Verdict]

    @property
    def winner_model(self) -> str | None:
        """The model on the winning side, or None for a tie or no winner."""
        return {"FOR": self.debate.for_model, "AGAINST": self.debate.against_model}.get(
            self.debate.winner or ""
        )

    def as_dict(self) -> dict[str, Any]:
        """The stored rows as plain values (what `arena show --format json` writes)."""
        return {
            "debate": self.debate._asdict(),
            "motion": self.motion,
            "category": self.category,
            "turns": [turn._asdict() for turn in self.turns],
            "verdicts": [verdict._asdict() for verdict in self.verdicts],
        }


@dataclass(frozen=True)
class Selection:
    """Which debates to show: `debate_ids` (ids or unique prefixes), or the debates matching
    every filter given, at most `limit` of them (None: all)."""

    debate_ids: tuple[str, ...] = ()
    run_id: str | None = None
    topics: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    winner: str | None = None
    """FOR, AGAINST, TIE, or a model: the debates that model won."""
    judge_disagrees: bool = False
    limit: int | None = 10

    @property
    def filtered(self) -> bool:
        return bool(
            self.run_id is not None
            or self.topics
            or self.models
            or self.winner is not None
            or self.judge_disagrees
        )


Query = tuple[str, list[object]]
"""SQL with `?` placeholders, and the values bound to them in order."""

ORDER: Final = "d.run_id, d.topic_id, d.for_model, d.against_model, d.replicate, d.debate_id"

DISAGREEING: Final = (
    "SELECT debate_id FROM verdicts WHERE valid AND variant <> 'both'"
    " GROUP BY debate_id HAVING count(DISTINCT winner) > 1"
)
"""Debates whose valid readings (every variant but the combined one) name different winners."""


def selection_sql(selection: Selection) -> Query:
    """SQL (and parameters) for the ids of the debates a filtered selection picks, in order.

    >>> selection_sql(Selection(run_id="r", winner="TIE", limit=2))[1]
    ['r', 'TIE', 2]
    """
    where: list[str] = []
    params: list[object] = []
    if selection.run_id is not None:
        where.append("d.run_id = ?")
        params.append(selection.run_id)
    if selection.topics:
        where.append("list_contains(?::VARCHAR[], d.topic_id)")
        params.append(list(selection.topics))
    for model in selection.models:
        where.append("(d.for_model = ? OR d.against_model = ?)")
        params += [model, model]
    if selection.winner is not None and selection.winner.upper() in SIDES:
        where.append("d.winner = ?")
        params.append(selection.winner.upper())
    elif selection.winner is not None:
        where.append(
            "((d.winner = 'FOR' AND d.for_model = ?)"
            " OR (d.winner = 'AGAINST' AND d.against_model = ?))"
        )
        params += [selection.winner, selection.winner]
    if selection.judge_disagrees:
        where.append(f"d.debate_id IN ({DISAGREEING})")
    sql = "SELECT d.debate_id FROM debates d"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {ORDER}"
    if selection.limit is not None:
        sql += " LIMIT ?"
        params.append(selection.limit)
    return sql, params


_KNOWN_SQL: Final = (
    "SELECT (SELECT list(DISTINCT run_id ORDER BY run_id) FROM debates),"
    " (SELECT list(DISTINCT topic_id ORDER BY topic_id) FROM debates"
    "  WHERE ?::VARCHAR IS NULL OR run_id = ?),"
    " (SELECT list(DISTINCT m ORDER BY m) FROM (SELECT for_model AS m, run_id FROM debates"
    "  UNION ALL SELECT against_model, run_id FROM debates) WHERE ?::VARCHAR IS NULL OR run_id = ?)"
)


def _check_known(db: str | os.PathLike[str], selection: Selection) -> None:
    """Refuse a run, topic or model that no debate of the file (of the run) has."""
    run = selection.run_id
    runs, topics, models = run_query(db, _KNOWN_SQL, [run, run, run, run]).rows[0]
    runs, topics, models = runs or [], topics or [], models or []
    if not runs:
        raise UserError(f"{db}: no debates in this file (arena tournament records them)")
    if run is not None and run not in runs:
        raise UserError(f"--run: no run {run!r} with debates in {db} (runs: {', '.join(runs)})")
    where = f" in run {run}" if run is not None else ""
    for topic in selection.topics:
        if topic not in topics:
            raise UserError(f"--topic: no topic {topic!r}{where} (topics: {', '.join(topics)})")
    named = list(selection.models)
    if selection.winner is not None and selection.winner.upper() not in SIDES:
        named.append(selection.winner)
    for model in named:
        if model not in models:
            option = "--model" if model in selection.models else "--winner"
            hint = "FOR, AGAINST, TIE or a model" if option == "--winner" else "models"
            raise UserError(
                f"{option}: no contestant {model!r}{where} ({hint}: {', '.join(models)})"
            )


def resolve_ids(db: str | os.PathLike[str], ids: Sequence[str]) -> list[str]:
    """The full debate id of each of `ids` (an id, or a prefix only one debate has), in order;
    a `UserError` for one that matches no debate or several."""
    sql = (
        "SELECT p.prefix, list(d.debate_id ORDER BY d.debate_id)"
        " FROM (SELECT DISTINCT unnest(?::VARCHAR[]) AS prefix) p"
        " LEFT JOIN debates d ON starts_with(d.debate_id, p.prefix) GROUP BY p.prefix"
    )
    found = {str(row[0]): row[1] for row in run_query(db, sql, [list(ids)]).rows}
    resolved: list[str] = []
    for given in ids:
        matches = [m for m in found.get(given) or [] if m is not None]
        if given in matches:
            resolved.append(given)
        elif len(matches) == 1 and given:
            resolved.append(matches[0])
        elif not matches:
            raise UserError(f"{db}: no debate {given!r}")
        else:
            raise UserError(f"{db}: {len(matches)} debates start with {given!r}; give more of it")
    return list(dict.fromkeys(resolved))


def select_debates(db: str | os.PathLike[str], selection: Selection) -> list[str]:
    """The ids of the debates `selection` names, checked against the file (`UserError` for an
    unknown id, run, topic or model, or for ids given with filters)."""
    if selection.debate_ids:
        if selection.filtered:
            raise UserError("give debate ids or a selection (--run, --topic, ...), not both")
        return resolve_ids(db, selection.debate_ids)
    _check_known(db, selection)
    sql, params = selection_sql(selection)
    return [str(row[0]) for row in run_query(db, sql, params).rows]


Fetch = Callable[[str, list[object]], tuple[list[str], list[tuple[Any, ...]]]]
"""Runs SQL with bound parameters: column names and rows (`run_query`, or a bulk connection)."""


def query_fetch(db: str | os.PathLike[str]) -> Fetch:
    """`Fetch` through `storage.run_query` (live reads mid-run, JSON-safe values)."""

    def fetch(sql: str, params: list[object]) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = run_query(db, sql, params)
        return result.columns, result.rows

    return fetch


def connection_fetch(con: duckdb.DuckDBPyConnection) -> Fetch:
    """`Fetch` on a DuckDB connection (`storage.read_connection`: bulk reads, no row limit)."""

    def fetch(sql: str, params: list[object]) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = con.execute(sql, params)
        return [d[0] for d in cursor.description or []], cursor.fetchall()

    return fetch


def _columns(row: type[DebateRow | Turn | Verdict], alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in row._fields)


def gather(fetch: Fetch, where: str, params: list[object]) -> list[DebateTranscript]:
    """The debates whose id satisfies `where` (SQL with `{id}` where the id column goes, and
    `params` for its placeholders), each with its motion, turns (by index) and verdicts (by
    judge and variant), in debate order (`ORDER`): three queries in all.

    The rows are built from the columns in field order (`_columns`), with no checking: they
    are the store's own typed columns. Only the timestamps change, to ISO text."""
    _, rows = fetch(
        f"SELECT {_columns(DebateRow, 'd')}, t.motion, t.category FROM debates d"
        " LEFT JOIN topics t ON t.run_id = d.run_id AND t.topic_id = d.topic_id"
        f" WHERE {where.format(id='d.debate_id')} ORDER BY {ORDER}",
        params,
    )
    heads = [
        (DebateRow._make((*row[:10], _iso(row[10]), _iso(row[11]))), row[12], row[13])
        for row in rows
    ]
    turns: dict[str, list[Turn]] = {d.debate_id: [] for d, _, _ in heads}
    verdicts: dict[str, list[Verdict]] = {d.debate_id: [] for d, _, _ in heads}
    _, rows = fetch(
        f"SELECT {_columns(Turn, 't')} FROM turns t WHERE {where.format(id='t.debate_id')}"
        " ORDER BY t.debate_id, t.turn_index",
        params,
    )
    for row in rows:
        turns.setdefault(row[0], []).append(Turn._make((*row[:-1], _iso(row[-1]))))
    _, rows = fetch(
        f"SELECT {_columns(Verdict, 'v')} FROM verdicts v WHERE {where.format(id='v.debate_id')}"
        " ORDER BY v.debate_id, v.judge, CASE v.variant WHEN 'sides' THEN 0 WHEN 'for_a'"
        " THEN 1 WHEN 'for_b' THEN 2 ELSE 3 END, v.variant",
        params,
    )
    for row in rows:
        verdicts.setdefault(row[0], []).append(Verdict._make((*row[:-1], _iso(row[-1]))))
    return [
        DebateTranscript(
            debate, motion, category, turns[debate.debate_id], verdicts[debate.debate_id]
        )
        for debate, motion, category in heads
    ]


def read_transcripts(db: str | os.PathLike[str], ids: Sequence[str]) -> list[DebateTranscript]:
    """The debates `ids` (full ids), in that order, read through `run_query` in chunks of
    `CHUNK`; an id that no debate has is left out."""
    fetch = query_fetch(db)
    found: dict[str, DebateTranscript] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        for t in gather(fetch, "list_contains(?::VARCHAR[], {id})", [chunk]):
            found[t.debate.debate_id] = t
    return [found[i] for i in ids if i in found]


def judges_disagree(transcript: DebateTranscript) -> bool:
    """Whether the debate's valid readings (every variant but `both`) name different winners:
    the Python twin of `DISAGREEING`."""
    return len({v.winner for v in transcript.verdicts if v.valid and v.variant != "both"}) > 1
