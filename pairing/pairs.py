"""Turn-level preference pairs by the PERSUADE rule, derived by set-based DuckDB queries.

The rule: a judged debate (outcome FOR or AGAINST; TIE and no valid verdict say nothing) tells
which position persuaded. Turns are indexed by (topic_id, side, turn_index). For one key, every
turn spoken in a debate that its position WON is paired with every turn spoken in a debate that
its position LOST: the winner's text is `chosen`, the loser's `rejected` (the full cross product).
Pairs whose texts are equal once whitespace runs are collapsed are dropped (they teach nothing;
the texts are `turns.text`, from which the engine already stripped think blocks).

Worked example: topic t, two debates, A (FOR) beat B in d1, B (FOR) lost to A in d2. Key
(t, FOR, 1) pairs d1's opening by A (chosen) with d2's opening by B (rejected); key
(t, AGAINST, 2) pairs d2's AGAINST opening by A (chosen, AGAINST won d2) with d1's by B.

The outcome is the debate's majority verdict (`debates.winner`), or with `judge` that judge's
valid verdict that counts (`verdicts.counts`: a judge that reads a debate more than once has one
such row per debate); `min_agreement` keeps only debates whose winning side got at least that
share of the valid verdicts that count. The same rule, unfiltered and by majority, is the `pairs`
view of the store (storage/migrations/0002_pairs_view.sql).

How it runs, so that it stays fast at the scale of a large arena (see bench/pairs.py):

1. One query finds the pairs on narrow columns only (ids, key, models): no text is carried
   through the self-join. The pairs are kept in a temporary table of the connection.
2. Duplicate texts are found without normalising every text in full: each turn gets two cheap
   fingerprints, of the first and last 48 characters of its normalised text (computed from 128
   characters at each end). Two texts whose fingerprints differ cannot be equal once normalised;
   only the pairs whose fingerprints agree (near-duplicates, or texts too short to tell) are
   compared in full. Exact, not probabilistic.
3. The output query joins the texts and the prompts onto the kept pairs and streams them to
   Parquet or JSON Lines with COPY, in no particular order (`derive_pairs` sorts its rows), so the
   full cross product of a large arena (millions of pairs, several GB of text) is written in
   bounded memory.

Simplified on purpose:

- Two turns share a key only when their debates also gave the speaker the same task: the same
  motion, number of turns and token limit (so runs with other settings never mix). With one run,
  or runs of the same settings, this is exactly the (topic, side, turn) key.
- The prompt (pairing/prompts.py) is by default the task for the key without the transcript
  (PERSUADE's choice, `context="none"`). `context="transcript"` gives the chosen turn's full chat
  instead. The trade-off: with the transcript, the prompt is what the chosen text answered, so
  DPO learns replies in context; but the rejected text was written in another debate, after other
  turns, so it is scored under a context it never saw, and replies that quote or rebut the
  opponent look worse than they were. Without it, both texts answer the same prompt but the
  model learns to argue a later turn without seeing the debate.
- The cap (`max_per_key`) and the topic split are seeded by DuckDB's `hash`, so they are
  reproducible with the same seed on the same DuckDB version, not across versions.

    from pairing import PairOptions, derive_pairs, write_pairs

    rows = derive_pairs(store, PairOptions(max_per_key=50, test_fraction=0.1, seed=1))
    write_pairs(store, "pairs.parquet", PairOptions(run_id="r1")).total   # pairing/writers.py
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from arena.core.errors import UserError
from pairing.prompts import instruction_parts, prompt_messages, system_content
from storage import Store

Connection = Store | duckdb.DuckDBPyConnection
"""Where pairs are read from: an open `storage.Store` or a plain DuckDB connection."""

EXPORT_RECORD = "arena-pairs.json"
"""The file in a `--format hf` folder where `export_record` is written (training/records.py
reads it into a training run's provenance)."""

PAIR_TABLES = ("runs", "topics", "models", "debates", "turns", "verdicts")
"""The tables the pair queries read (what a snapshot for them must hold)."""

PairFormat = Literal["parquet", "jsonl", "hf"]
Context = Literal["none", "transcript"]
PairMode = Literal["dpo", "sft"]
"""`dpo`: preference pairs (`PAIR_COLUMNS`); `sft`: the winners' turns as demonstrations
(`SFT_COLUMNS`)."""

PAIR_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "topic_id",
    "side",
    "turn_index",
    "chosen_model",
    "rejected_model",
    "chosen_debate_id",
    "rejected_debate_id",
    "split",
)
"""The columns of a pair row, in order (TRL's conversational preference format plus metadata)."""

SFT_COLUMNS = ("messages", "topic_id", "side", "turn_index", "model", "debate_id", "split")
"""The columns of a demonstration row (`mode="sft"`), in order: TRL's conversational language
modeling format (the prompt's messages, then the winning turn as the assistant's) plus
metadata."""


def columns_for(mode: PairMode) -> tuple[str, ...]:
    """The columns of the rows `mode` writes."""
    return SFT_COLUMNS if mode == "sft" else PAIR_COLUMNS


_MESSAGES = "STRUCT(role VARCHAR, content VARCHAR)[]"
_PROMPTS_TYPE = (
    "STRUCT(topic_id VARCHAR, side VARCHAR, turn_index INTEGER, motion VARCHAR, turns INTEGER,"
    f" max_tokens INTEGER, prompt {_MESSAGES})[]"
)
_SYSTEMS_TYPE = (
    "STRUCT(motion VARCHAR, side VARCHAR, turns INTEGER, max_tokens INTEGER, persona VARCHAR,"
    " content VARCHAR)[]"
)
_INSTRUCTIONS_TYPE = "STRUCT(turns INTEGER, turn_index INTEGER, head VARCHAR, tail VARCHAR)[]"
_KEY = ("topic_id", "side", "turn_index", "motion", "turns", "max_tokens")

FINGERPRINT_CHARS = 48
"""Characters of normalised text at each end that a turn's fingerprints cover."""
_FINGERPRINT_WINDOW = 128  # raw characters read at each end to get them
ROW_GROUP = 16_384
"""Rows per Parquet row group: each writer thread holds one (a few kB a row) in memory."""


class PairOptions(BaseModel):
    """Which pairs to derive, how to split them, and what their prompt shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str | None = None
    """Only debates of this run; all runs when None."""
    chosen_models: Sequence[str] | None = None
    """Only pairs whose chosen turn was spoken by one of these models; any when None."""
    rejected_models: Sequence[str] | None = None
    """Only pairs whose rejected turn was spoken by one of these models; any when None."""
    judge: str | None = None
    """Outcomes from this judge's valid verdicts; the debate's majority (`debates.winner`) when
    None."""
    min_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    """Only debates whose winning side got at least this share of the valid verdicts (a TIE is
    a valid verdict for neither side; a share given to 4 decimals passes: 0.6667 keeps 2 of 3).
    Each judge's verdict that counts (`verdicts.counts`) is its one vote, as in the majority."""
    max_per_key: int | None = Field(default=None, ge=1)
    """At most this many pairs per (topic, side, turn) key, a seeded sample; all when None."""
    test_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of topics (whole topics, rounded) whose pairs go to the `test` split."""
    test_topics: Sequence[str] | None = None
    """Explicit topic ids for the `test` split, instead of `test_fraction`."""
    seed: int = 0
    """Seed of the cap's sample and of the topic split."""
    context: Context = "none"
    """What the prompt shows: the turn's task (`none`), or the chosen debate so far
    (`transcript`)."""
    mode: PairMode = "dpo"
    """`dpo`: preference pairs; `sft`: every turn spoken on a debate's winning side (by
    `chosen_models`, when given) as a demonstration, with the same outcome filters, cap and
    split."""

    @model_validator(mode="after")
    def _one_way_to_split(self) -> PairOptions:
        if self.test_topics is not None and self.test_fraction > 0:
            raise ValueError("give either test_topics or test_fraction, not both")
        if self.mode == "sft" and self.rejected_models is not None:
            raise ValueError("demonstrations (mode sft) have no rejected turn to filter on")
        return self


@dataclass(frozen=True)
class WrittenPairs:
    """What `write_pairs` wrote: how many pairs, and how many per (split, chosen model, turn)."""

    path: Path
    total: int
    counts: list[tuple[str, str, int, int]]
    """(split, chosen_model, turn_index, pairs), sorted (for demonstrations: their model)."""
    mode: PairMode = "dpo"
    """What the rows are: pairs (`dpo`) or demonstrations (`sft`)."""

    def by(self, field: Literal["split", "chosen_model", "turn_index"]) -> dict[Any, int]:
        """Pairs per value of one field, in sorted order."""
        index = {"split": 0, "chosen_model": 1, "turn_index": 2}[field]
        out: dict[Any, int] = {}
        for row in self.counts:
            out[row[index]] = out.get(row[index], 0) + row[3]
        return dict(sorted(out.items()))


def export_record(
    options: PairOptions, written: WrittenPairs, database: str | None, format: PairFormat
) -> dict[str, Any]:
    """What `arena-pairs.json` records of an export: the database, the run, the mode, every
    option (filters, split, seed, context), the counts, when, and by which arena version."""
    from arena import __version__

    return {
        "database": database,
        "run_id": options.run_id,
        "mode": options.mode,
        "format": format,
        "options": options.model_dump(mode="json"),
        "rows": written.total,
        "splits": written.by("split"),
        "models": written.by("chosen_model"),
        "turns": {str(turn): n for turn, n in written.by("turn_index").items()},
        "created_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "arena_version": __version__,
    }


def normalised(column: str) -> str:
    """SQL for `column` with whitespace runs (space, tab, newline, CR, form feed) collapsed to
    one space and the ends trimmed.

    Only runs of two or more and single non-space characters are replaced: the same result as
    replacing every run, three times faster, since single spaces are most of the matches.
    """
    return f"trim(regexp_replace({column}, '[ \\t\\n\\r\\f]{{2,}}|[\\t\\n\\r\\f]', ' ', 'g'))"


def fingerprints(text: str) -> tuple[str, str]:
    """SQL for a turn's two fingerprints (head, tail) from `text`; NULL when it is too short.

    The normalised form of a text's first 128 characters is a prefix of the normalised text (a
    whitespace run cut at the edge still becomes one space), so its first 48 characters, when it
    has that many, are the normalised text's; likewise at the end.
    """
    n, window = FINGERPRINT_CHARS, _FINGERPRINT_WINDOW
    head = normalised(f"left({text}, {window})")
    tail = normalised(f"right({text}, {window})")
    return (
        f"CASE WHEN length({head}) >= {n} THEN hash(left({head}, {n})) END",
        f"CASE WHEN length({tail}) >= {n} THEN hash(right({tail}, {n})) END",
    )


def _spoken_query(options: PairOptions) -> tuple[str, dict[str, object], str]:
    """The CTEs every selection starts from (`spoken`: each turn of a judged debate that passes
    the outcome filters, with its key, model, whether its side won, and its fingerprints), their
    parameters, and the SQL condition of `chosen_models` on a `spoken` row ('' when None)."""
    # DuckDB refuses parameters a statement does not use, so each is added with its use.
    params: dict[str, object] = {}
    where = ["d.status = 'done'"]
    if options.run_id is not None:
        where.append("d.run_id = $run_id")
        params["run_id"] = options.run_id
    if options.judge is None:
        outcome, judge_join = "d.winner", ""
    else:
        outcome = "jv.winner"
        judge_join = (
            "JOIN verdicts jv ON jv.debate_id = d.debate_id AND jv.judge = $judge"
            " AND jv.counts AND jv.valid"
        )
        params["judge"] = options.judge
    agreement_join = agreement = ""
    if options.min_agreement is not None:
        agreement_join = """JOIN (
        SELECT debate_id, count(*) AS valid_votes,
               count(*) FILTER (winner = 'FOR') AS for_votes,
               count(*) FILTER (winner = 'AGAINST') AS against_votes
        FROM verdicts WHERE valid AND counts GROUP BY debate_id
    ) v ON v.debate_id = o.debate_id"""
        # a share given to 4 decimals passes: 2 of 3 meets 0.6667 (but not 0.667)
        agreement = """AND (CASE o.winner WHEN 'FOR' THEN v.for_votes ELSE v.against_votes END)
            / v.valid_votes >= $min_agreement - 5e-5"""
        params["min_agreement"] = options.min_agreement
    chosen_filter = ""
    if options.chosen_models is not None:
        chosen_filter = "AND list_contains($chosen_models::VARCHAR[], model)"
        params["chosen_models"] = list(options.chosen_models)
    head, tail = fingerprints("t.text")
    sql = f"""
WITH outcomes AS (
    SELECT d.debate_id, d.run_id, d.topic_id, d.turns_planned AS turns, {outcome} AS winner
    FROM debates d {judge_join}
    WHERE {" AND ".join(where)}
),
judged AS (
    SELECT o.debate_id, o.run_id, o.topic_id, o.turns, o.winner, tp.motion, r.max_tokens
    FROM outcomes o
    JOIN topics tp ON tp.run_id = o.run_id AND tp.topic_id = o.topic_id
    JOIN runs r ON r.run_id = o.run_id
    {agreement_join}
    WHERE o.winner IN ('FOR', 'AGAINST') {agreement}
),
spoken AS (
    SELECT j.debate_id, j.run_id, j.topic_id, j.motion, j.turns, j.max_tokens,
           t.side, t.turn_index, t.model, t.side = j.winner AS won,
           {head} AS head, {tail} AS tail
    FROM turns t JOIN judged j ON j.debate_id = t.debate_id
)"""
    return sql, params, chosen_filter


def candidates_query(options: PairOptions) -> tuple[str, dict[str, object]]:
    """The SQL (and parameters) of the candidate pairs of `options`, on narrow columns.

    Columns: the key (`topic_id`, `side`, `turn_index`, `motion`, `turns`, `max_tokens`), both
    models, debate ids and run ids, and `suspect`: whether the two texts may be equal once
    normalised (their fingerprints agree or are missing), to be checked by `DROP_DUPLICATES`.
    """
    spoken, params, chosen_filter = _spoken_query(options)
    rejected_filter = ""
    if options.rejected_models is not None:
        rejected_filter = "AND list_contains($rejected_models::VARCHAR[], model)"
        params["rejected_models"] = list(options.rejected_models)
    sql = f"""{spoken}
SELECT w.topic_id, w.side, w.turn_index, w.motion, w.turns, w.max_tokens,
       w.model AS chosen_model, l.model AS rejected_model,
       w.debate_id AS chosen_debate_id, l.debate_id AS rejected_debate_id,
       w.run_id AS chosen_run_id, l.run_id AS rejected_run_id,
       NOT (coalesce(w.head <> l.head, false) OR coalesce(w.tail <> l.tail, false)) AS suspect
FROM (SELECT * FROM spoken WHERE won {chosen_filter}) w
JOIN (SELECT * FROM spoken WHERE NOT won {rejected_filter}) l
  ON l.topic_id = w.topic_id AND l.side = w.side AND l.turn_index = w.turn_index
 AND l.motion = w.motion AND l.turns = w.turns AND l.max_tokens = w.max_tokens"""
    return sql, params


def demonstrations_query(options: PairOptions) -> tuple[str, dict[str, object]]:
    """The SQL (and parameters) of the demonstrations of `options` (`mode="sft"`): every turn
    spoken on the winning side of a judged debate that passes the filters, on narrow columns.

    Columns: the key, and the turn's model, debate and run under the names a pair's chosen side
    has (`chosen_model`, `chosen_debate_id`, `chosen_run_id`), so that the cap, the split and the
    prompts are those of pairs.
    """
    spoken, params, chosen_filter = _spoken_query(options)
    sql = f"""{spoken}
SELECT topic_id, side, turn_index, motion, turns, max_tokens, model AS chosen_model,
       debate_id AS chosen_debate_id, run_id AS chosen_run_id
FROM spoken WHERE won {chosen_filter}"""
    return sql, params


DROP_DUPLICATES = f"""
DELETE FROM $candidates USING (
    SELECT x.chosen_debate_id, x.rejected_debate_id, x.turn_index
    FROM turns tl
    JOIN (
        SELECT s.*, tw.text AS chosen_text
        FROM turns tw
        JOIN (SELECT chosen_debate_id, rejected_debate_id, turn_index
              FROM $candidates WHERE suspect) s
          ON tw.debate_id = s.chosen_debate_id AND tw.turn_index = s.turn_index
    ) x ON tl.debate_id = x.rejected_debate_id AND tl.turn_index = x.turn_index
    WHERE {normalised("x.chosen_text")} = {normalised("tl.text")}
) same
WHERE $candidates.chosen_debate_id = same.chosen_debate_id
  AND $candidates.rejected_debate_id = same.rejected_debate_id
  AND $candidates.turn_index = same.turn_index"""
"""Removes the candidate pairs (table `$candidates`) whose texts are equal once normalised.

Run with the join optimizers off (`_settings`): the hash tables are built on the suspect pairs
(with their chosen texts), and the turns stream past them, whatever DuckDB estimates.
"""


def split_query(options: PairOptions, candidates: str) -> tuple[str, dict[str, object]]:
    """The SQL (and parameters) that caps the distinct pairs in `candidates` and splits them.

    Columns: those of `candidates_query` without `suspect` (or of `demonstrations_query`), and
    `split` (`train` or `test`).
    """
    params: dict[str, object] = {}
    cap = ""
    ids = "chosen_debate_id" if options.mode == "sft" else "chosen_debate_id, rejected_debate_id"
    if options.max_per_key is not None:
        cap = f"""QUALIFY row_number() OVER (
        PARTITION BY topic_id, side, turn_index, motion, turns, max_tokens
        ORDER BY hash($seed, {ids}), {ids}) <= $max_per_key"""
        params["max_per_key"] = options.max_per_key
        params["seed"] = options.seed
    if options.test_topics is not None:
        test_topics = "SELECT unnest($test_topics::VARCHAR[]) AS topic_id"
        params["test_topics"] = list(options.test_topics)
    else:
        # Whole topics, in a seeded order; the first round(fraction * n) of them are test.
        test_topics = """SELECT topic_id FROM (SELECT DISTINCT topic_id FROM capped)
        QUALIFY row_number() OVER (ORDER BY hash($seed, topic_id), topic_id)
            <= round($test_fraction * count(*) OVER ())"""
        params["test_fraction"] = options.test_fraction
        params["seed"] = options.seed
    exclude = "" if options.mode == "sft" else " EXCLUDE (suspect)"
    sql = f"""
WITH capped AS (SELECT *{exclude} FROM {candidates} {cap}),
test_topics AS ({test_topics})
SELECT c.*,
       CASE WHEN c.topic_id IN (SELECT topic_id FROM test_topics) THEN 'test' ELSE 'train' END
           AS split
FROM capped c"""
    return sql, params


def output_query(selected: str, context: Context = "none", mode: PairMode = "dpo") -> str:
    """SQL for the rows (`PAIR_COLUMNS`, or `SFT_COLUMNS` for `mode="sft"`) of the narrow pairs
    or demonstrations in the table `selected`.

    Parameters: `$prompts` (see `key_prompts`) for `context="none"`; `$systems` and
    `$instructions` (see `transcript_parts`) for `context="transcript"`.
    """
    prompts, prompt_join = _prompts_sql(selected, context)
    if mode == "sft":
        # the turns stream past the narrow demonstrations; the prompts are looked up
        return f"""
WITH {prompts}
SELECT p.prompt || [{{'role': 'assistant', 'content': t.text}}] AS messages,
       s.topic_id, s.side, s.turn_index, s.chosen_model AS model,
       s.chosen_debate_id AS debate_id, s.split
FROM turns t
JOIN {selected} s ON t.debate_id = s.chosen_debate_id AND t.turn_index = s.turn_index
{prompt_join}"""
    # Written in the order the joins should run, each hash table built on the right-hand side
    # (the join optimizers are off while it runs, see `_settings`): the turns table streams past
    # the narrow pairs, picking up the rejected text, then the chosen text (from the few chosen
    # turns) and the prompt are looked up. So memory holds the narrow pairs, the chosen texts and
    # the prompts, never the rejected texts or the output rows.
    return f"""
WITH {prompts},
chosen_texts AS (
    SELECT debate_id, turn_index, text FROM turns
    WHERE (debate_id, turn_index) IN (SELECT chosen_debate_id, turn_index FROM {selected})
)
SELECT p.prompt,
       [{{'role': 'assistant', 'content': tw.text}}] AS chosen,
       [{{'role': 'assistant', 'content': tl.text}}] AS rejected,
       s.topic_id, s.side, s.turn_index, s.chosen_model, s.rejected_model,
       s.chosen_debate_id, s.rejected_debate_id, s.split
FROM turns tl
JOIN {selected} s ON tl.debate_id = s.rejected_debate_id AND tl.turn_index = s.turn_index
JOIN chosen_texts tw ON tw.debate_id = s.chosen_debate_id AND tw.turn_index = s.turn_index
{prompt_join}"""


def _prompts_sql(selected: str, context: Context) -> tuple[str, str]:
    """The CTEs that give each row of `selected` its prompt (`prompts`), and their join."""
    if context == "none":
        prompts = f"""
prompts AS (SELECT unnest(p) FROM (SELECT unnest($prompts::{_PROMPTS_TYPE}) AS p))"""
        prompt_join = "JOIN prompts p ON " + " AND ".join(f"p.{k} = s.{k}" for k in _KEY)
    else:
        prompts = f"""
chosen_turns AS (
    SELECT DISTINCT s.chosen_debate_id AS debate_id, s.turn_index, s.side, s.motion, s.turns,
           s.max_tokens, m.spec->>'$.persona' AS persona
    FROM {selected} s
    LEFT JOIN models m
      ON m.run_id = s.chosen_run_id AND m.role = 'contestant' AND m.name = s.chosen_model
),
systems AS (SELECT unnest(x) FROM (SELECT unnest($systems::{_SYSTEMS_TYPE}) AS x)),
instructions AS (SELECT unnest(x) FROM (SELECT unnest($instructions::{_INSTRUCTIONS_TYPE}) AS x)),
-- the speaker's own turns up to the chosen one: the instruction before each (with the
-- opponent's turn before it), and each earlier reply
history AS (
    SELECT c.debate_id, c.turn_index AS target, 2 * o.turn_index AS position, 'user' AS role,
           CASE WHEN i.tail IS NULL THEN i.head ELSE i.head || prev.text || i.tail END AS content
    FROM chosen_turns c
    JOIN turns o ON o.debate_id = c.debate_id AND o.side = c.side AND o.turn_index <= c.turn_index
    JOIN instructions i ON i.turns = c.turns AND i.turn_index = o.turn_index
    LEFT JOIN turns prev ON prev.debate_id = c.debate_id AND prev.turn_index = o.turn_index - 1
    UNION ALL
    SELECT c.debate_id, c.turn_index, 2 * o.turn_index + 1, 'assistant', o.text
    FROM chosen_turns c
    JOIN turns o ON o.debate_id = c.debate_id AND o.side = c.side AND o.turn_index < c.turn_index
),
prompts AS (
    SELECT c.debate_id AS chosen_debate_id, c.turn_index,
           [{{'role': 'system', 'content': sy.content}}]
           || list({{'role': h.role, 'content': h.content}} ORDER BY h.position) AS prompt
    FROM chosen_turns c
    JOIN systems sy ON sy.motion = c.motion AND sy.side = c.side AND sy.turns = c.turns
     AND sy.max_tokens = c.max_tokens AND sy.persona IS NOT DISTINCT FROM c.persona
    JOIN history h ON h.debate_id = c.debate_id AND h.target = c.turn_index
    GROUP BY c.debate_id, c.turn_index, sy.content
)"""
        prompt_join = (
            "JOIN prompts p ON p.chosen_debate_id = s.chosen_debate_id"
            " AND p.turn_index = s.turn_index"
        )
    return prompts, prompt_join


def _read(source: Connection, sql: str, params: dict[str, object] | None = None) -> list[Any]:
    if isinstance(source, Store):
        return source.read(sql, params)
    return source.execute(sql, params).fetchall()


def key_prompts(source: Connection, selected: str) -> list[dict[str, object]]:
    """One rendered prompt per distinct key among the pairs in `selected` (`$prompts`)."""
    prompts: list[dict[str, object]] = []
    for topic_id, side, turn_index, motion, turns, max_tokens in _read(
        source, f"SELECT DISTINCT {', '.join(_KEY)} FROM {selected} ORDER BY ALL"
    ):
        prompts.append(
            {
                "topic_id": topic_id,
                "side": side,
                "turn_index": turn_index,
                "motion": motion,
                "turns": turns,
                "max_tokens": max_tokens,
                "prompt": prompt_messages(motion, side, turn_index, turns, max_tokens),
            }
        )
    return prompts


def transcript_parts(source: Connection, selected: str) -> dict[str, object]:
    """The system prompts and split instructions the chosen turns in `selected` need."""
    systems = [
        {
            "motion": motion,
            "side": side,
            "turns": turns,
            "max_tokens": max_tokens,
            "persona": persona,
            "content": system_content(motion, side, turns, max_tokens, persona),
        }
        for motion, side, turns, max_tokens, persona in _read(
            source,
            f"""SELECT DISTINCT s.motion, s.side, s.turns, s.max_tokens, m.spec->>'$.persona'
            FROM {selected} s LEFT JOIN models m ON m.run_id = s.chosen_run_id
             AND m.role = 'contestant' AND m.name = s.chosen_model ORDER BY ALL""",
        )
    ]
    lengths = [row[0] for row in _read(source, f"SELECT DISTINCT turns FROM {selected}")]
    instructions = [part for turns in sorted(lengths) for part in instruction_parts(turns)]
    return {"systems": systems, "instructions": instructions}


@contextmanager
def selected_pairs(source: Connection, options: PairOptions) -> Iterator[str]:
    """The pairs (or demonstrations) of `options`, narrow, in a temporary table of the
    connection; yields its name.

    Three statements: the candidates, then duplicates dropped (the few suspect pairs compared in
    full; demonstrations have none), then the cap and the split.
    """
    tag = uuid.uuid4().hex[:12]
    candidates, selected = f"pair_candidates_{tag}", f"pairs_{tag}"
    sft = options.mode == "sft"
    try:
        sql, params = demonstrations_query(options) if sft else candidates_query(options)
        _read(source, f"CREATE TEMP TABLE {candidates} AS {sql}", params)
        suspects = 0
        if not sft:
            (suspects,) = _read(source, f"SELECT count(*) FROM {candidates} WHERE suspect")[0]
        if suspects:
            with _settings(source):
                _read(source, DROP_DUPLICATES.replace("$candidates", candidates))
        sql, params = split_query(options, candidates)
        _read(source, f"CREATE TEMP TABLE {selected} AS {sql}", params)
        _read(source, f"DROP TABLE {candidates}")
        yield selected
    finally:
        _read(source, f"DROP TABLE IF EXISTS {candidates}")
        _read(source, f"DROP TABLE IF EXISTS {selected}")


def _output(
    source: Connection, selected: str, options: PairOptions
) -> tuple[str, dict[str, object]]:
    sql = output_query(selected, options.context, options.mode)
    if options.context == "none":
        return sql, {"prompts": key_prompts(source, selected)}
    return sql, transcript_parts(source, selected)


def derive_pairs(source: Connection, options: PairOptions | None = None) -> list[dict[str, Any]]:
    """The preference pairs of `options`, as rows with the columns in `PAIR_COLUMNS`, sorted
    (with `mode="sft"`: the demonstrations, with the columns in `SFT_COLUMNS`).

    For small sets (tests, inspection); `write_pairs` streams large ones to a file.
    """
    options = options or PairOptions()
    with selected_pairs(source, options) as selected:
        sql, params = _output(source, selected, options)
        order = " ORDER BY s.topic_id, s.side, s.turn_index, s.chosen_debate_id"
        if options.mode == "dpo":
            order += ", s.rejected_debate_id"
        with _settings(source):
            rows = _read(source, sql + order, params)
    return [dict(zip(columns_for(options.mode), row, strict=True)) for row in rows]


def pair_counts(source: Connection, selected: str, written: int) -> list[tuple[str, str, int, int]]:
    """(split, chosen_model, turn_index, pairs) over the pairs in `selected`, sorted.

    `written` is how many rows COPY wrote: every selected pair has its row (the texts and
    prompts are inner joins), so a difference is a bug, not something to report as counts.
    """
    rows = _read(
        source,
        f"SELECT split, chosen_model, turn_index, count(*) FROM {selected}"
        " GROUP BY ALL ORDER BY ALL",
    )
    counts = [(str(a), str(b), int(c), int(d)) for a, b, c, d in rows]
    if sum(row[3] for row in counts) != written:
        raise RuntimeError(f"{sum(row[3] for row in counts)} pairs selected, {written} written")
    return counts


@contextmanager
def _settings(source: Connection) -> Iterator[None]:
    """Run the output query as written, and let COPY write rows in any order; then restore.

    Rows in any order: COPY need not hold them back. Joins as written: DuckDB's estimates for
    the temporary tables' joins are rough, and a hash table built on the wrong side would hold
    every text.
    """
    names = ("preserve_insertion_order", "disabled_optimizers")
    previous = _read(source, f"SELECT {', '.join(f'current_setting({n!r})' for n in names)}")[0]
    disabled = {name.strip() for name in str(previous[1] or "").split(",") if name.strip()}
    disabled |= {"join_order", "build_side_probe_side"}
    _read(source, "SET preserve_insertion_order = false")
    _read(source, f"SET disabled_optimizers = '{','.join(sorted(disabled))}'")
    try:
        yield
    finally:
        _read(source, f"SET preserve_insertion_order = {'true' if previous[0] else 'false'}")
        _read(source, f"SET disabled_optimizers = '{previous[1] or ''}'")


def copy_pairs(
    source: Connection,
    selected: str,
    target: Path,
    options: PairOptions,
    format: Literal["parquet", "jsonl"],
    partition_by_split: bool = False,
) -> int:
    """COPY the rows of `selected` (pairs or demonstrations, as `options` say) to `target`; the
    number of rows written."""
    sql, params = _output(source, selected, options)
    params["path"] = str(target)
    # zstd at level 1: as fast to write as snappy here, and files less than half the size
    copy_options = (
        ["FORMAT parquet", "COMPRESSION zstd", "COMPRESSION_LEVEL 1", f"ROW_GROUP_SIZE {ROW_GROUP}"]
        if format == "parquet"
        else ["FORMAT json"]
    )
    if partition_by_split:
        copy_options += ["PARTITION_BY (split)", "WRITE_PARTITION_COLUMNS true", "OVERWRITE true"]
    with _settings(source):
        # COPY answers with the number of rows it wrote.
        (written,) = _read(source, f"COPY ({sql}) TO $path ({', '.join(copy_options)})", params)[0]
    return int(written)


def check_names(source: Connection, options: PairOptions) -> None:
    """Raise UserError for a model, judge, run or test topic that the database does not know.

    A typo in a filter would otherwise give an empty or a wrongly split dataset, silently.
    """

    def known(sql: str) -> list[str]:
        return [str(row[0]) for row in _read(source, sql)]

    def check(kind: str, given: Sequence[str] | None, names: list[str]) -> None:
        missing = [name for name in given or () if name not in names]
        if missing:
            listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise UserError(
                f"no {kind} named {', '.join(map(repr, missing))} in the database"
                f" ({kind}s: {listed or 'none'})"
            )

    check(
        "run",
        [options.run_id] if options.run_id else None,
        known("SELECT run_id FROM runs ORDER BY 1"),
    )
    contestants = known("SELECT DISTINCT name FROM models WHERE role = 'contestant' ORDER BY 1")
    check("model", options.chosen_models, contestants)
    check("model", options.rejected_models, contestants)
    check(
        "judge",
        [options.judge] if options.judge else None,
        known("SELECT DISTINCT judge FROM verdicts ORDER BY 1"),
    )
    check("topic", options.test_topics, known("SELECT DISTINCT topic_id FROM topics ORDER BY 1"))
