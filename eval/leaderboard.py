"""The leaderboard of `arena rank`: battles read from the database, rated, as rows.

Each judged debate is a battle between its FOR and its AGAINST model. Pooled (the default), its
outcome is the debate's majority verdict (`debates.winner`); with `judge`, that judge's valid
verdict. Reading goes through `storage.run_query`, so it works while a tournament is running.
The rating itself is `eval.ratings` (Bradley-Terry on aggregated counts, seeded bootstrap).

Simplified for now: terminal table and JSON only (no HTML report yet), one judge or the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.ratings import A_WINS, B_WINS, TIE, aggregate, bootstrap
from storage import run_query

JSON_SCHEMA_VERSION = 1

_OUTCOME = {"FOR": A_WINS, "AGAINST": B_WINS, "TIE": TIE}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def battles_sql(run_id: str | None = None, judge: str | None = None) -> str:
    """SQL for (for_model, against_model, outcome) rows, in debate order."""
    where = ["d.status = 'done'"]
    if run_id is not None:
        where.append(f"d.run_id = {_literal(run_id)}")
    if judge is None:
        source = "debates d"
        winner = "d.winner"
        where.append("d.winner is not null")
    else:
        source = "debates d join verdicts v using (debate_id)"
        winner = "v.winner"
        where += [f"v.judge = {_literal(judge)}", "v.valid"]
    return (
        f"select d.for_model, d.against_model, {winner} from {source}"
        f" where {' and '.join(where)} order by d.updated_at, d.debate_id"
    )


@dataclass(frozen=True)
class Leaderboard:
    models: list[dict[str, Any]]
    side_advantage: dict[str, float]
    battles: int
    judge: str | None
    run_id: str | None
    rounds: int
    seed: int

    def as_json(self) -> dict[str, Any]:
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "method": "bradley-terry",
            "scale": "elo (400 per factor 10 in odds, mean 1000)",
            "judge": self.judge or "majority",
            "run_id": self.run_id,
            "battles": self.battles,
            "bootstrap": {"rounds": self.rounds, "seed": self.seed, "level": 0.95},
            "side_advantage": self.side_advantage,
            "models": self.models,
        }


def leaderboard(
    db: Path,
    *,
    run_id: str | None = None,
    judge: str | None = None,
    rounds: int = 1000,
    seed: int = 0,
) -> Leaderboard:
    """Rate every model that has played a judged debate."""
    rows = run_query(db, battles_sql(run_id, judge)).rows
    names = sorted({str(r[0]) for r in rows} | {str(r[1]) for r in rows})
    index = {name: i for i, name in enumerate(names)}
    if len(names) < 2:
        return Leaderboard([], {}, len(rows), judge, run_id, rounds, seed)
    a = np.array([index[str(r[0])] for r in rows])
    b = np.array([index[str(r[1])] for r in rows])
    outcome = np.array([_OUTCOME[str(r[2])] for r in rows])
    counts = aggregate(a, b, outcome, len(names))
    result = bootstrap(counts, len(names), rounds, rng=np.random.default_rng(seed))
    played = np.bincount(a, minlength=len(names)) + np.bincount(b, minlength=len(names))
    score = np.zeros(len(names))
    np.add.at(score, a, np.where(outcome == A_WINS, 1.0, np.where(outcome == TIE, 0.5, 0.0)))
    np.add.at(score, b, np.where(outcome == B_WINS, 1.0, np.where(outcome == TIE, 0.5, 0.0)))
    order = sorted(range(len(names)), key=lambda i: (int(result.rank[i]), -result.fit.ratings[i]))
    models: list[dict[str, Any]] = [
        {
            "rank": int(result.rank[i]),
            "model": names[i],
            "rating": round(float(result.fit.ratings[i]), 1),
            "lower": round(float(result.lower[i]), 1),
            "upper": round(float(result.upper[i]), 1),
            "debates": int(played[i]),
            "win_rate": round(float(score[i] / played[i]), 4) if played[i] else None,
        }
        for i in order
    ]
    side = {
        "for_advantage": round(result.fit.side_advantage, 1),
        "lower": round(result.side_lower, 1),
        "upper": round(result.side_upper, 1),
    }
    return Leaderboard(models, side, len(rows), judge, run_id, rounds, seed)
