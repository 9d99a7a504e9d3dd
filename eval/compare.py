"""The math of `arena rank --compare A B`: B's rating minus A's, and how their own debates went.

- `paired_difference` takes the bootstrap rounds the leaderboard was computed from (one row of
  ratings per round, `eval.ratings.Bootstrap.samples` or `EloBootstrap.samples`) and computes
  B - A *within each round*, so the percentile interval is that of the difference itself. Two
  separate intervals that overlap say little: both ratings move together from round to round
  (the scale is centred on the mean, and a round that resamples A's wins also resamples B's
  losses), so the paired interval is usually much narrower than "upper of one minus lower of the
  other". It also gives the share of rounds in which B is rated above A.
- `head_to_head_record` counts the battles between the two, by side: the debates where A argued
  FOR (A's wins, B's wins, ties) and those where B did.

Pure numpy on the same integer arrays as `eval.ratings` (A_WINS, B_WINS, TIE outcomes, model
indices); reading the store and naming models is `eval.report.build`'s job.

Simplified on purpose: the interval is the bootstrap's percentile interval (as the leaderboard's
are), not a bias-corrected one; and the head-to-head record is the raw count, not a rating: two
models that never met still get a rating difference, through the models both met.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eval.ratings import A_WINS, B_WINS, TIE


@dataclass(frozen=True)
class Difference:
    """B - A in rating points, with the percentile interval of the within-round differences."""

    difference: float
    """The point ratings' difference (B - A)."""
    lower: float
    upper: float
    above: float
    """Share of the bootstrap rounds in which B is rated above A."""


def paired_difference(
    samples: npt.ArrayLike,
    point: npt.ArrayLike,
    first: int,
    second: int,
    level: float = 0.95,
) -> Difference:
    """`second` - `first` in rating: the point difference and a paired bootstrap interval.

    `samples` has one row of ratings per bootstrap round (rounds x models); `point` is the
    ratings the leaderboard shows. By hand, five rounds of two models whose ratings each span
    90 points, the difference only 20:

    >>> samples = [[950, 1050], [960, 1040], [1000, 1010], [930, 1070], [940, 1020]]
    >>> d = paired_difference(samples, [955, 1045], first=0, second=1, level=0.5)
    >>> d.difference, d.lower, d.upper, d.above  # differences 100, 80, 10, 140, 80
    (90.0, 80.0, 100.0, 1.0)
    """
    rows = np.asarray(samples, dtype=np.float64)
    ratings = np.asarray(point, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError("samples must be a rounds x models array with at least one round")
    if first == second:
        raise ValueError("compare two different models")
    diff = rows[:, second] - rows[:, first]
    lower, upper = np.percentile(diff, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return Difference(
        difference=float(ratings[second] - ratings[first]),
        lower=float(lower),
        upper=float(upper),
        above=float(np.mean(diff > 0)),
    )


@dataclass(frozen=True)
class SideRecord:
    """The battles of one side assignment between the two models."""

    first_wins: int
    second_wins: int
    ties: int

    @property
    def battles(self) -> int:
        """All battles of this side assignment."""
        return self.first_wins + self.second_wins + self.ties


@dataclass(frozen=True)
class Record:
    """The head-to-head record of `first` against `second`, by who argued FOR."""

    first_for: SideRecord
    """Battles in which `first` argued FOR and `second` AGAINST."""
    second_for: SideRecord
    """Battles in which `second` argued FOR and `first` AGAINST."""

    @property
    def total(self) -> SideRecord:
        """Both side assignments together."""
        a, b = self.first_for, self.second_for
        return SideRecord(
            a.first_wins + b.first_wins, a.second_wins + b.second_wins, a.ties + b.ties
        )


def head_to_head_record(
    model_a: npt.ArrayLike, model_b: npt.ArrayLike, outcome: npt.ArrayLike, first: int, second: int
) -> Record:
    """Count the battles between `first` and `second` (model_a argued FOR, model_b AGAINST).

    >>> r = head_to_head_record([0, 0, 1, 1, 2], [1, 1, 0, 0, 0],
    ...                         [A_WINS, TIE, A_WINS, B_WINS, A_WINS], first=0, second=1)
    >>> r.first_for  # 0 argued FOR against 1: a win and a tie
    SideRecord(first_wins=1, second_wins=0, ties=1)
    >>> r.second_for  # 1 argued FOR against 0: one win each
    SideRecord(first_wins=1, second_wins=1, ties=0)
    >>> r.total.battles
    4
    """
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    o = np.asarray(outcome, dtype=np.int64)

    def side(for_model: int, against_model: int) -> tuple[int, int, int]:
        mask = (a == for_model) & (b == against_model)
        return (
            int(np.sum(mask & (o == A_WINS))),
            int(np.sum(mask & (o == B_WINS))),
            int(np.sum(mask & (o == TIE))),
        )

    for_wins, against_wins, first_ties = side(first, second)
    second_for_wins, second_against_wins, second_ties = side(second, first)
    return Record(
        first_for=SideRecord(for_wins, against_wins, first_ties),
        second_for=SideRecord(second_against_wins, second_for_wins, second_ties),
    )
