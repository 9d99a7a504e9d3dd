"""Turn-level preference pairs by the PERSUADE rule, derived in one set-based DuckDB query.

The rule: a judged debate (`debates.winner` is FOR or AGAINST; TIE and NULL say nothing) tells
which position persuaded. Turns are indexed by (topic_id, side, turn_index). For one key, every
turn spoken in a debate that its position WON is paired with every turn spoken in a debate that
its position LOST: the winner's text is `chosen`, the loser's `rejected` (the full cross product).
Pairs whose texts are equal once whitespace is collapsed are dropped (they teach nothing).

Worked example: topic t, two debates, A (FOR) beat B in d1, B (FOR) lost to A in d2. Key
(t, FOR, 1) pairs d1's opening by A (chosen) with d2's opening by B (rejected); key
(t, AGAINST, 2) pairs d2's AGAINST opening by A (chosen, AGAINST won d2) with d1's by B.

Simplified on purpose:

- Two turns share a key only when their debates also gave the speaker the same task: the same
  motion, number of turns and token limit (so runs with other settings never mix). With one run,
  or runs of the same settings, this is exactly the (topic, side, turn) key.
- The prompt is the debate's instruction for the key as the speaker saw it, *without* the
  transcript (no opponent text, no earlier turns) and without a persona: a pair's two texts may
  come from models with different personas, and the prompt is per key, not per model. It is
  rendered by arena's own templates (`arena.debate`), once per distinct key (few), in Python;
  everything per turn stays in SQL.
- The cap (`max_per_key`) and the topic split are seeded by DuckDB's `hash`, so they are
  reproducible with the same seed on the same DuckDB version, not across versions.

    from pairing import PairOptions, derive_pairs, write_pairs

    rows = derive_pairs(store, PairOptions(max_per_key=50, test_fraction=0.1, seed=1))
    write_pairs(store, "pairs.parquet", PairOptions(run_id="r1"))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from arena.debate import other_side, render, role_of, system_prompt
from storage import Store

Connection = Store | duckdb.DuckDBPyConnection
"""Where pairs are read from: an open `storage.Store` or a plain DuckDB connection."""

PairFormat = Literal["parquet", "jsonl"]

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

# What the Python side hands back to SQL: one rendered prompt per key.
_PROMPTS_TYPE = (
    "STRUCT(topic_id VARCHAR, side VARCHAR, turn_index INTEGER, motion VARCHAR, turns INTEGER,"
    " max_tokens INTEGER, prompt STRUCT(role VARCHAR, content VARCHAR)[])[]"
)
_KEY = ("topic_id", "side", "turn_index", "motion", "turns", "max_tokens")


class PairOptions(BaseModel):
    """Which pairs to derive and how to split them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str | None = None
    """Only debates of this run; all runs when None."""
    chosen_models: Sequence[str] | None = None
    """Only pairs whose chosen turn was spoken by one of these models; any when None."""
    rejected_models: Sequence[str] | None = None
    """Only pairs whose rejected turn was spoken by one of these models; any when None."""
    max_per_key: int | None = Field(default=None, ge=1)
    """At most this many pairs per (topic, side, turn) key, a seeded sample; all when None."""
    test_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of topics (whole topics, rounded) whose pairs go to the `test` split."""
    test_topics: Sequence[str] | None = None
    """Explicit topic ids for the `test` split, instead of `test_fraction`."""
    seed: int = 0
    """Seed of the cap's sample and of the topic split."""

    @model_validator(mode="after")
    def _one_way_to_split(self) -> PairOptions:
        if self.test_topics is not None and self.test_fraction > 0:
            raise ValueError("give either test_topics or test_fraction, not both")
        return self


def _normalised(column: str) -> str:
    """SQL for `column` with whitespace runs collapsed to one space and the ends trimmed."""
    return f"trim(regexp_replace({column}, '\\s+', ' ', 'g'))"


def pairs_query(options: PairOptions, *, keys_only: bool = False) -> tuple[str, dict[str, object]]:
    """The SQL (and its parameters) that derives the pairs of `options`.

    The query expects a `$prompts` parameter (a list of rendered prompts per key, see
    `prompt_keys`) unless `keys_only`, in which case it returns the distinct keys that need one.
    """
    # DuckDB refuses parameters a statement does not use, so each is added with its use.
    params: dict[str, object] = {}
    debate_filter = ""
    if options.run_id is not None:
        debate_filter = "AND d.run_id = $run_id"
        params["run_id"] = options.run_id
    model_filter = ""
    if options.chosen_models is not None:
        model_filter += " AND list_contains($chosen_models::VARCHAR[], w.model)"
        params["chosen_models"] = list(options.chosen_models)
    if options.rejected_models is not None:
        model_filter += " AND list_contains($rejected_models::VARCHAR[], l.model)"
        params["rejected_models"] = list(options.rejected_models)

    sql = f"""
WITH judged AS (
    SELECT d.debate_id, d.topic_id, d.winner, d.turns_planned AS turns, tp.motion, r.max_tokens
    FROM debates d
    JOIN topics tp ON tp.run_id = d.run_id AND tp.topic_id = d.topic_id
    JOIN runs r ON r.run_id = d.run_id
    WHERE d.winner IN ('FOR', 'AGAINST') {debate_filter}
),
spoken AS (
    SELECT j.debate_id, j.topic_id, j.turns, j.motion, j.max_tokens, t.side, t.turn_index,
           t.model, t.text, t.side = j.winner AS won, {_normalised("t.text")} AS norm
    FROM turns t JOIN judged j ON j.debate_id = t.debate_id
    WHERE t.text IS NOT NULL
),
candidates AS (
    SELECT w.topic_id, w.side, w.turn_index, w.motion, w.turns, w.max_tokens,
           w.text AS chosen_text, l.text AS rejected_text,
           w.model AS chosen_model, l.model AS rejected_model,
           w.debate_id AS chosen_debate_id, l.debate_id AS rejected_debate_id
    FROM spoken w
    JOIN spoken l
      ON l.topic_id = w.topic_id AND l.side = w.side AND l.turn_index = w.turn_index
     AND l.motion = w.motion AND l.turns = w.turns AND l.max_tokens = w.max_tokens
    WHERE w.won AND NOT l.won AND w.norm <> l.norm {model_filter}
)"""
    if keys_only:
        return sql + f"\nSELECT DISTINCT {', '.join(_KEY)} FROM candidates ORDER BY ALL", params

    cap = ""
    if options.max_per_key is not None:
        cap = """QUALIFY row_number() OVER (
        PARTITION BY topic_id, side, turn_index, motion, turns, max_tokens
        ORDER BY hash($seed, chosen_debate_id, rejected_debate_id),
                 chosen_debate_id, rejected_debate_id) <= $max_per_key"""
        params["max_per_key"] = options.max_per_key
        params["seed"] = options.seed
    if options.test_topics is not None:
        test_topics = "SELECT unnest($test_topics::VARCHAR[]) AS topic_id"
        params["test_topics"] = list(options.test_topics)
    else:
        # Whole topics, in a seeded order; the first round(fraction * n) of them are test.
        test_topics = """SELECT topic_id FROM (SELECT DISTINCT topic_id FROM candidates)
        QUALIFY row_number() OVER (ORDER BY hash($seed, topic_id), topic_id)
            <= round($test_fraction * count(*) OVER ())"""
        params["test_fraction"] = options.test_fraction
        params["seed"] = options.seed
    sql += f""",
capped AS (SELECT * FROM candidates {cap}),
test_topics AS ({test_topics}),
prompts AS (SELECT unnest(p) FROM (SELECT unnest($prompts::{_PROMPTS_TYPE}) AS p))
SELECT p.prompt,
       [{{'role': 'assistant', 'content': c.chosen_text}}] AS chosen,
       [{{'role': 'assistant', 'content': c.rejected_text}}] AS rejected,
       c.topic_id, c.side, c.turn_index, c.chosen_model, c.rejected_model,
       c.chosen_debate_id, c.rejected_debate_id,
       CASE WHEN c.topic_id IN (SELECT topic_id FROM test_topics) THEN 'test' ELSE 'train' END
           AS split
FROM capped c
JOIN prompts p USING ({", ".join(_KEY)})
ORDER BY c.topic_id, c.side, c.turn_index, c.chosen_debate_id, c.rejected_debate_id"""
    return sql, params


def prompt_messages(
    motion: str, side: str, turn_index: int, turns: int, max_tokens: int
) -> list[dict[str, str]]:
    """The chat a debater is given for `turn_index`, as arena renders it, minus the transcript.

    The system prompt for its side and the turn's instruction with no opponent text: what the
    speaker of an opening sees exactly, and the task (not the context) of a later turn.
    """
    system = system_prompt(motion, side, turns, max_tokens, None)
    instruction = render(
        "debater_turn",
        turn_index=turn_index,
        turns=turns,
        role=role_of(turn_index, turns),
        side=side,
        opponent_side=other_side(side),
        opponent_turn=turn_index - 1,
        opponent_text=None,
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": instruction}]


def _read(source: Connection, sql: str, params: dict[str, object]) -> list[tuple[Any, ...]]:
    if isinstance(source, Store):
        return source.read(sql, params)
    return source.execute(sql, params).fetchall()


def prompt_keys(source: Connection, options: PairOptions) -> list[dict[str, object]]:
    """One rendered prompt per distinct key among the pairs of `options` (the `$prompts` value)."""
    sql, params = pairs_query(options, keys_only=True)
    prompts: list[dict[str, object]] = []
    for topic_id, side, turn_index, motion, turns, max_tokens in _read(source, sql, params):
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


def derive_pairs(source: Connection, options: PairOptions | None = None) -> list[dict[str, Any]]:
    """The preference pairs of `options`, as rows with the columns in `PAIR_COLUMNS`."""
    options = options or PairOptions()
    sql, params = pairs_query(options)
    params["prompts"] = prompt_keys(source, options)
    return [dict(zip(PAIR_COLUMNS, row, strict=True)) for row in _read(source, sql, params)]


def write_pairs(
    source: Connection,
    path: str | os.PathLike[str],
    options: PairOptions | None = None,
    format: PairFormat = "parquet",
) -> int:
    """Write the pairs of `options` to `path` (Parquet, or JSON Lines) with DuckDB's COPY.

    Returns the number of pairs written. `prompt`, `chosen` and `rejected` are lists of
    {role, content} structs, which `datasets.load_dataset("parquet", ...)` reads as TRL expects.
    """
    if format not in ("parquet", "jsonl"):
        raise ValueError(f"unknown format {format!r}: use 'parquet' or 'jsonl'")
    options = options or PairOptions()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sql, params = pairs_query(options)
    params["prompts"] = prompt_keys(source, options)
    params["path"] = str(target)
    copy_format = "FORMAT parquet" if format == "parquet" else "FORMAT json"
    # COPY answers with the number of rows it wrote.
    (written,) = _read(source, f"COPY ({sql}) TO $path ({copy_format})", params)[0]
    return int(written)
