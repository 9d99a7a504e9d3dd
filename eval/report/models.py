"""The typed report of `arena rank`: pydantic models, one per object of the JSON document.

`RankReport` is everything `arena rank` shows. `--format json` prints `RankReport.model_dump`
(fields in the order they are defined here); the terminal table, Markdown and HTML are rendered
from the same object (`eval.report.render`), so the outputs never disagree. The docstring under
each field is its description in the JSON schema (`report_json_schema`), which
`scripts/rank_schema.py` writes into docs/rank.md; a test fails when the two differ.

Numbers are rounded where the report is built (`eval.report.build`), not here: ratings to 0.1
Elo points, rates, probabilities and kappas to 4 decimals. A number that is undefined (no
decisive verdicts, too few debates, a NaN from the math) is `null`, never NaN.

Simplified on purpose:
- The models describe an output, not an input: they are built by `build_report` and serialised,
  never parsed back from user files, so there are no validators beyond the types.
- A per-judge table (`RatingTable`) repeats the four leading fields of the main table instead of
  `RankReport` inheriting them, because pydantic serialises inherited fields first and the main
  table's fields come after the filters in the JSON document (schema version 2).
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

SchemaVersion = Literal[2]
JSON_SCHEMA_VERSION: Final[SchemaVersion] = 2
"""The version of the JSON document `--format json` prints; version 1 had only the main table."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Filters(_Model):
    """The `--topic` and `--category` filters given (empty lists: every topic)."""

    topics: list[str]
    """Topic ids given with `--topic`."""
    categories: list[str]
    """Topic categories given with `--category`."""


class BootstrapSettings(_Model):
    """How the intervals were computed."""

    rounds: int
    """Bootstrap rounds (`--bootstrap`)."""
    seed: int
    """Seed of the bootstrap's random generator (`--seed`)."""
    level: float
    """Coverage of the percentile intervals (0.95)."""


class ModelRating(_Model):
    """One model's row of a leaderboard."""

    rank: int
    """1 + the number of models whose lower bound is above this model's upper bound (models
    whose intervals overlap share a rank)."""
    model: str
    """The model's name."""
    rating: float | None
    """Rating in Elo points (rounded to 0.1)."""
    lower: float | None
    """Lower bound of the bootstrap percentile interval, Elo points."""
    upper: float | None
    """Upper bound of the bootstrap percentile interval, Elo points."""
    debates: int
    """Battles the model took part in, on either side."""
    win_rate: float | None
    """Points per battle, a tie counting 0.5 (rounded to 4 decimals)."""


class SideAdvantage(_Model):
    """The FOR side's advantage h in Elo points, fitted with the ratings:
    P(FOR wins) = sigmoid(s_FOR - s_AGAINST + h)."""

    for_advantage: float | None
    """Fitted advantage of arguing FOR, Elo points (rounded to 0.1)."""
    lower: float | None
    """Lower bound of its bootstrap interval."""
    upper: float | None
    """Upper bound of its bootstrap interval."""


class RatingTable(_Model):
    """One judge's leaderboard, rated from that judge's valid verdicts alone: the main table's
    first four fields."""

    battles: int
    """Battles rated: debates with a valid verdict by this judge."""
    models: list[ModelRating]
    """One row per model, in rank order."""
    side_advantage: SideAdvantage | None
    """The FOR-side advantage; null for Elo, which ignores it."""
    tie_param: float | None
    """Davidson's tie parameter nu (`--ties davidson`, rounded to 4 decimals); null otherwise."""


class WinMatrices(_Model):
    """Score of the row model against the column model (a tie is half a point), sides pooled."""

    models: list[str]
    """Row and column order: the main table's rank order."""
    predicted: list[list[float | None]]
    """Predicted by the ratings (Bradley-Terry: averaged over the two side assignments);
    null on the diagonal."""
    observed: list[list[float | None]]
    """Observed in the battles; null on the diagonal and where two models never met."""


class EloOverTime(_Model):
    """Online Elo updated battle by battle in the order the debates finished, sampled at up to
    200 battles: a trace to look at, not a rating."""

    k: float
    """Elo K factor (`--k`)."""
    battle: list[int]
    """The sampled battle numbers, 1-based."""
    ratings: dict[str, list[float | None]]
    """Model -> its online Elo rating after each sampled battle (rounded to 0.1), models in rank
    order."""


class MajorityEdge(_Model):
    """An edge winner -> loser: the winner scored more than half the points between the two."""

    winner: str
    """The model with the majority of the points."""
    loser: str
    """The other model."""
    points: float
    """Points the winner scored against the loser (a tie is half a point)."""
    debates: int
    """Battles between the two, sides pooled."""


class MajorityCycle(_Model):
    """An intransitive cycle: models[0] beats models[1] beats ... beats models[0]."""

    models: list[str]
    """The models in cycle order, starting at the alphabetically first."""
    debates: list[int]
    """Battles behind each edge, models[i] -> models[i + 1] (the last edge back to models[0])."""


class MajorityGraph(_Model):
    """The majority-win graph of the main table's battles and its intransitive cycles."""

    edges: list[MajorityEdge]
    """Every majority edge, the most lopsided first."""
    cycles: list[MajorityCycle]
    """Cycles of up to 4 models, the shortest first (at most 100)."""
    cycles_truncated: bool
    """True when there were more than 100 cycles."""


class JudgeQuality(_Model):
    """One judge's quality over the selected debates, from its verdict that counts on each."""

    judge: str
    """The judge's name."""
    verdicts: int
    """Verdicts that count, valid or not."""
    valid: int
    """Valid verdicts: FOR, AGAINST or TIE."""
    invalid_rate: float | None
    """Share of verdicts that could not be read, even after the repair request."""
    ties: int
    """Valid TIE verdicts."""
    for_rate: float | None
    """Share of decisive verdicts won by FOR."""
    for_lower: float | None
    """Lower bound of the exact (Clopper-Pearson) 95% interval of `for_rate`."""
    for_upper: float | None
    """Upper bound of that interval."""
    side_biased: bool
    """True when the interval excludes 0.5."""
    verbosity_r: float | None
    """Pearson correlation between the FOR side's share of the characters spoken and a FOR win
    (decisive verdicts): positive when the longer side tends to win."""
    verbosity_p: float | None
    """The p-value of `verbosity_r`."""
    longer_side_won: float | None
    """Share of decisive verdicts (unequal lengths) won by the side that spoke more."""


class PairAgreement(_Model):
    """Cohen's kappa between two judges, on the debates both judged validly."""

    a: str
    """The first judge (alphabetical order)."""
    b: str
    """The second judge."""
    kappa: float | None
    """Cohen's kappa over the labels FOR, AGAINST, TIE."""
    n: int
    """Debates both judged validly."""


class Agreement(_Model):
    """Agreement between the judges (statistic null and no pairs with fewer than two judges)."""

    statistic: Literal["cohen", "fleiss"] | None
    """Cohen's kappa for two judges, Fleiss' for three or more."""
    kappa: float | None
    """The statistic's value."""
    debates: int
    """Debates it was computed over (Fleiss: those every judge judged validly)."""
    pairwise: list[PairAgreement]
    """Cohen's kappa for every pair of judges."""


class SwapConsistency(_Model):
    """A judge read with the debaters' labels both ways (verdicts of variant `for_a` and
    `for_b`): how often it gave the same verdict, mapped back to FOR and AGAINST."""

    judge: str
    """The judge's name."""
    agreement: float | None
    """Share of debates (both readings valid) with the same verdict."""
    kappa: float | None
    """Cohen's kappa between the two readings."""
    n: int
    """Debates with both readings valid."""


class Judges(_Model):
    """Judge quality, agreement between judges and swap consistency."""

    per_judge: list[JudgeQuality]
    """One row per judge with a verdict that counts on a selected debate, by name."""
    agreement: Agreement
    """Agreement between the judges."""
    swap: list[SwapConsistency]
    """The judges read both ways, by name."""


class RankReport(_Model):
    """Everything `arena rank` shows: `--format json` prints this object."""

    schema_version: SchemaVersion
    """Version of this schema."""
    method: Literal["bradley-terry", "elo"]
    """The rating method (`--method`)."""
    ties: Literal["half", "davidson"]
    """How ties count (`--ties`; always half for Elo)."""
    scale: str
    """How ratings are scaled and anchored."""
    judge: str
    """`majority` (each debate's majority verdict) or the judge named by `--judge`."""
    run_id: str | None
    """The `--run` filter; null for every run."""
    filters: Filters
    """The topic and category filters."""
    debates: int
    """Finished debates selected by the filters."""
    bootstrap: BootstrapSettings
    """The bootstrap's settings."""
    battles: int
    """Battles in the main table: selected debates with a verdict (majority, or by `judge`)."""
    models: list[ModelRating]
    """The main table, in rank order."""
    side_advantage: SideAdvantage | None
    """The FOR-side advantage; null for Elo, which ignores it."""
    tie_param: float | None
    """Davidson's tie parameter nu (`--ties davidson`, rounded to 4 decimals); null otherwise."""
    matrices: WinMatrices
    """Predicted and observed scores between every two models."""
    elo_over_time: EloOverTime
    """The online-Elo trace."""
    graph: MajorityGraph
    """The majority-win graph."""
    per_judge: dict[str, RatingTable]
    """Judge -> its own leaderboard, by name; a judge with fewer than two models judged (or no
    ties under `--ties davidson`) has none."""
    judges: Judges
    """Judge quality."""


class SideCounts(_Model):
    """The debates of one side assignment between the two compared models."""

    battles: int
    """Battles (judged debates) of this side assignment."""
    first_wins: int
    """Won by the first model (`A` of `--compare A B`)."""
    second_wins: int
    """Won by the second model (`B`)."""
    ties: int
    """Ties."""


class HeadToHead(_Model):
    """The head-to-head record of A against B, by who argued FOR."""

    first_for: SideCounts
    """A argued FOR, B AGAINST."""
    second_for: SideCounts
    """B argued FOR, A AGAINST."""
    total: SideCounts
    """Both side assignments."""


class Comparison(_Model):
    """`arena rank --compare A B`: B's rating minus A's with a paired bootstrap interval, and
    their head-to-head record; `--format json` prints this object."""

    schema_version: Literal[1]
    """Version of this schema."""
    first: str
    """A, the model compared against (a base model)."""
    second: str
    """B, the model compared (an adapter on that base)."""
    method: Literal["bradley-terry", "elo"]
    """The rating method (`--method`)."""
    judge: str
    """`majority` (each debate's majority verdict) or the judge named by `--judge`."""
    run_id: str | None
    """The `--run` filter; null for every run."""
    filters: Filters
    """The topic and category filters."""
    bootstrap: BootstrapSettings
    """The bootstrap's settings: the same rounds as the leaderboard's."""
    battles: int
    """Battles among all the rated models (the leaderboard's)."""
    ratings: list[ModelRating]
    """A's and B's rows of the leaderboard, in that order."""
    difference: float | None
    """B - A in Elo points (rounded to 0.1)."""
    lower: float | None
    """Lower bound of the percentile interval of B - A computed within each bootstrap round."""
    upper: float | None
    """Upper bound of that interval."""
    b_above: float | None
    """Share of the bootstrap rounds in which B is rated above A (rounded to 4 decimals)."""
    head_to_head: HeadToHead
    """The debates between A and B."""


COMPARISON_SCHEMA_VERSION: Final[Literal[1]] = 1
"""The version of the JSON document `arena rank --compare A B --format json` prints."""


def report_json_schema() -> dict[str, Any]:
    """The JSON schema of `arena rank --format json`: pydantic's `model_json_schema` of
    `RankReport` in serialization mode, with the dialect named and each description (a field's
    docstring) on one line.

    >>> report_json_schema()["properties"]["schema_version"]["const"]
    2
    """
    schema = RankReport.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_one_line(schema)}


def _one_line(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: re.sub(r"\s+", " ", v) if k == "description" and isinstance(v, str) else _one_line(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_one_line(v) for v in node]
    return node
