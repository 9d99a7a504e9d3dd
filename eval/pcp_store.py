"""PCP scores read from the store: what `arena pcp report` shows, mid-run or after.

Everything is read through `storage.run_query` with bound parameters, so a report works while
`arena pcp run` is writing the file (its live server answers) and on a finished file alike. One
query turns a run's `pcp_judgments` into one row per (model, judge, pair, sample), with the
readings side by side (`READINGS_SQL`); the math is `eval.pcp`'s.

Which run: `run_id`, or the file's only PCP run. A run that holds topic pairs gets the PCP table
(model | SC | HC | Average, per judge); one that holds paired-CSV items gets the even-handedness
table; `compare` adds B - A for named pairs of models, under each judge.

Simplified on purpose: one run per report; models and judges are reported in name order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from arena.core.errors import UserError
from eval.pcp import (
    DEFAULT_ROUNDS,
    LEVEL,
    Difference,
    EvenHandedness,
    PairedRow,
    PairRow,
    PCPScores,
    compare_pcp,
    score_even_handedness,
    score_pcp,
)
from eval.runs import choose_run
from storage import run_query

SCHEMA_VERSION: Final = 1

RUNS_SQL: Final = (
    "SELECT r.run_id, r.status, r.config,"
    " (SELECT count(*) FROM pcp_pairs p WHERE p.run_id = r.run_id) AS planned"
    " FROM runs r WHERE r.kind = 'pcp' ORDER BY r.created_at"
)


def _signed(measure: str, variant: str) -> str:
    return (
        f"max(CASE WHEN j.measure = '{measure}' AND j.variant = '{variant}' AND j.readable THEN"
        " CASE j.favoured WHEN 'a' THEN coalesce(j.score, 1) WHEN 'b' THEN -coalesce(j.score, 1)"
        " ELSE 0 END END)"
    )


def _value(measure: str, variant: str, column: str = "score") -> str:
    return (
        f"max(CASE WHEN j.measure = '{measure}' AND j.variant = '{variant}' AND j.readable"
        f" THEN j.{column} END)"
    )


READINGS_SQL: Final = (
    "SELECT j.model, j.judge, j.pair_id, j.sample, any_value(p.kind), any_value(p.template),"
    " any_value(p.valence), "
    + ", ".join(
        [
            _signed("consistency", "a_first"),
            _signed("consistency", "b_first"),
            _value("helpfulness", "a"),
            _value("helpfulness", "b"),
            _signed("willingness", "a_first"),
            _signed("willingness", "b_first"),
            _value("scales", "a"),
            _value("scales", "b"),
            _value("scales", "a", "score2"),
            _value("scales", "b", "score2"),
        ]
    )
    + " FROM pcp_judgments j JOIN pcp_pairs p ON p.run_id = j.run_id AND p.pair_id = j.pair_id"
    " WHERE j.run_id = ? GROUP BY j.model, j.judge, j.pair_id, j.sample"
    " ORDER BY j.model, j.judge, j.pair_id, j.sample"
)
"""One row per (model, judge, pair, sample): kind, template, valence, the consistency readings
signed (+ favours a) in both orders, helpfulness of a and b, willingness signed in both orders,
refusal of a and b, opposing of a and b. Unreadable or missing readings are NULL."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ModelPCP(_Model):
    model: str
    judge: str
    scores: PCPScores


class ModelEvenHandedness(_Model):
    model: str
    judge: str
    scores: EvenHandedness


class ModelComparison(_Model):
    base: str
    other: str
    judge: str
    difference: Difference


class PCPReport(_Model):
    """What `arena pcp report` shows (its JSON form)."""

    schema_version: int
    run_id: str
    status: str
    pairs_file: str | None
    pairs_planned: int
    bootstrap_rounds: int
    bootstrap_seed: int
    level: float
    pcp: list[ModelPCP]
    even_handedness: list[ModelEvenHandedness]
    comparisons: list[ModelComparison]

    def json_summary(self) -> dict[str, Any]:
        """The report as JSON, with `SC`, `HC` and `average` per model (under its judge) at
        the top of each entry, beside the full scores."""
        data = self.model_dump(mode="json")
        for entry in data["pcp"]:
            for key in ("SC", "HC", "average"):
                entry[key] = entry["scores"][key]
        return data


def _choose_run(db: str | os.PathLike[str], run_id: str | None) -> tuple[Any, ...]:
    return choose_run(db, run_query(db, RUNS_SQL).rows, run_id, "PCP", "arena pcp run")


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def read_rows(
    db: str | os.PathLike[str], run_id: str
) -> tuple[dict[tuple[str, str], list[PairRow]], dict[tuple[str, str], list[PairedRow]]]:
    """A run's readings by (model, judge): PCP pair rows and paired-CSV rows."""
    pcp: dict[tuple[str, str], list[PairRow]] = {}
    paired: dict[tuple[str, str], list[PairedRow]] = {}
    for row in run_query(db, READINGS_SQL, [run_id]).rows:
        model, judge, pair, sample, kind, template, valence = row[:7]
        c1, c2, h_a, h_b, w1, w2, r_a, r_b, o_a, o_b = (_opt(v) for v in row[7:])
        key = (str(model), str(judge))
        if kind == "pcp":
            pcp.setdefault(key, []).append(
                PairRow(str(pair), int(sample), template, valence, (c1, c2), (h_a, h_b))
            )
        else:
            paired.setdefault(key, []).append(
                PairedRow(str(pair), int(sample), (w1, w2), (r_a, r_b), (o_a, o_b))
            )
    return pcp, paired


def build_report(
    db: str | os.PathLike[str],
    run_id: str | None = None,
    *,
    compare: Sequence[tuple[str, str]] = (),
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
) -> PCPReport:
    """The report of a run (or the file's only PCP run); `compare`: (A, B) model pairs whose
    B - A differences are added. Raises `UserError` for an unknown run or model."""
    run, status, config, planned = _choose_run(db, run_id)
    settings = json.loads(config) if isinstance(config, str) else (config or {})
    pcp, paired = read_rows(db, str(run))
    models = sorted({m for m, _ in pcp} | {m for m, _ in paired})
    for pair in compare:
        for name in pair:
            if name not in models:
                raise UserError(
                    f"--compare: no model {name!r} in run {run} (models: {', '.join(models)})"
                )
    comparisons = [
        ModelComparison(
            base=a,
            other=b,
            judge=judge,
            difference=compare_pcp(pcp[(a, judge)], pcp[(b, judge)], rounds=rounds, seed=seed),
        )
        for a, b in compare
        for judge in sorted({j for m, j in pcp if m == a})
        if (b, judge) in pcp
    ]
    return PCPReport(
        schema_version=SCHEMA_VERSION,
        run_id=str(run),
        status=str(status),
        pairs_file=settings.get("pairs"),
        pairs_planned=int(planned),
        bootstrap_rounds=rounds,
        bootstrap_seed=seed,
        level=LEVEL,
        pcp=[
            ModelPCP(model=m, judge=j, scores=score_pcp(rows, rounds=rounds, seed=seed))
            for (m, j), rows in sorted(pcp.items())
        ],
        even_handedness=[
            ModelEvenHandedness(
                model=m, judge=j, scores=score_even_handedness(rows, rounds=rounds, seed=seed)
            )
            for (m, j), rows in sorted(paired.items())
        ],
        comparisons=comparisons,
    )
