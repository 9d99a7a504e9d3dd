"""Judge quality: what the judges got wrong, as pure functions on arrays of labels.

A verdict label is one of `FOR`, `AGAINST`, `TIE` coded as `eval.ratings` codes them
(`A_WINS` = FOR won, `B_WINS` = AGAINST won, `TIE`), or `MISSING` (-1) where a judge gave no valid
verdict on a debate. A *label matrix* has one row per debate and one column per judge.

- `side_bias`: the share of decisive verdicts won by the FOR side, with an exact (Clopper-Pearson)
  interval. Motions are argued on both sides by every pairing, so an unbiased judge sits near 0.5.
- `cohen_kappa` (two judges) and `fleiss_kappa` (any number, on debates every judge rated):
  agreement beyond chance over the three labels.
- `verbosity`: does the longer side win? The Pearson (point-biserial) correlation between the
  FOR side's share of the characters spoken and a FOR win, over decisive verdicts, with its
  p-value, and the share of decisive verdicts won by the side that spoke more.
- `swap_consistency`: a judge asked twice under neutral labels, FOR called Debater A and then
  Debater B (`swap_check` or `average_orders`: its `verdicts` rows of `variant` 'for_a' and
  'for_b' on the same debate), should give the same verdict both times; the share of debates
  where it did, and Cohen's kappa between the two.

Every function takes plain numpy arrays and returns plain numbers, so it works on any table of
verdicts, not only ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest, pearsonr

from eval.ratings import A_WINS, B_WINS, TIE

MISSING = -1
LABELS = (A_WINS, B_WINS, TIE)


@dataclass(frozen=True)
class SideBias:
    """FOR wins among decisive verdicts, with an exact binomial interval."""

    for_wins: int
    decisive: int
    ties: int
    for_rate: float
    lower: float
    upper: float

    @property
    def biased(self) -> bool:
        """True when the interval excludes 0.5."""
        return self.lower > 0.5 or self.upper < 0.5


def side_bias(labels: npt.ArrayLike, level: float = 0.95) -> SideBias:
    """FOR-side win rate over decisive verdicts (ties and missing left out).

    >>> b = side_bias([A_WINS] * 70 + [B_WINS] * 30 + [TIE] * 5)
    >>> b.for_rate, b.decisive, b.ties, b.biased
    (0.7, 100, 5, True)
    """
    y = np.asarray(labels, dtype=np.int64)
    for_wins = int(np.sum(y == A_WINS))
    decisive = for_wins + int(np.sum(y == B_WINS))
    ties = int(np.sum(y == TIE))
    if decisive == 0:
        return SideBias(0, 0, ties, math.nan, math.nan, math.nan)
    ci = binomtest(for_wins, decisive).proportion_ci(confidence_level=level, method="exact")
    return SideBias(for_wins, decisive, ties, for_wins / decisive, ci.low, ci.high)


def cohen_kappa(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, int]:
    """Cohen's kappa between two judges over the debates both rated; returns (kappa, n).

    kappa = (p_o - p_e) / (1 - p_e); 1 when the judges always agree, 0 at chance. NaN when fewer
    than two debates were rated by both, or when chance agreement is already 1 (both always gave
    the same single label).

    >>> x = [A_WINS] * 20 + [A_WINS] * 5 + [B_WINS] * 10 + [B_WINS] * 15
    >>> y = [A_WINS] * 20 + [B_WINS] * 5 + [A_WINS] * 10 + [B_WINS] * 15
    >>> k, n = cohen_kappa(x, y)
    >>> round(k, 3), n
    (0.4, 50)
    """
    a = np.asarray(x, dtype=np.int64)
    b = np.asarray(y, dtype=np.int64)
    both = (a != MISSING) & (b != MISSING)
    a, b = a[both], b[both]
    n = int(a.size)
    if n < 2:
        return math.nan, n
    p_o = float(np.mean(a == b))
    p_e = float(sum(np.mean(a == c) * np.mean(b == c) for c in LABELS))
    if p_e >= 1.0:
        return math.nan, n
    return (p_o - p_e) / (1.0 - p_e), n


def fleiss_kappa(matrix: npt.ArrayLike) -> tuple[float, int]:
    """Fleiss' kappa over the rows (debates) where every column (judge) gave a valid label.

    Returns (kappa, number of debates used). NaN with fewer than two judges or debates.

    >>> m = [[A_WINS, A_WINS, A_WINS], [B_WINS, B_WINS, B_WINS], [A_WINS, B_WINS, A_WINS]]
    >>> round(fleiss_kappa(m)[0], 3)
    0.55
    """
    labels = np.asarray(matrix, dtype=np.int64)
    if labels.ndim != 2 or labels.shape[1] < 2:
        return math.nan, 0
    rows = labels[np.all(labels != MISSING, axis=1)]
    n, raters = rows.shape
    if n < 2:
        return math.nan, int(n)
    counts = np.stack([(rows == c).sum(axis=1) for c in LABELS], axis=1).astype(np.float64)
    p_i = (np.sum(counts * counts, axis=1) - raters) / (raters * (raters - 1))
    p_bar = float(np.mean(p_i))
    p_j = counts.sum(axis=0) / (n * raters)
    p_e = float(np.sum(p_j * p_j))
    if p_e >= 1.0:
        return math.nan, int(n)
    return (p_bar - p_e) / (1.0 - p_e), int(n)


def kappa(matrix: npt.ArrayLike) -> tuple[float, int, str]:
    """Agreement between all the judges: Cohen's kappa for two, Fleiss' for more.

    Returns (kappa, debates used, which statistic).
    """
    labels = np.asarray(matrix, dtype=np.int64)
    if labels.ndim == 2 and labels.shape[1] == 2:
        k, n = cohen_kappa(labels[:, 0], labels[:, 1])
        return k, n, "cohen"
    k, n = fleiss_kappa(labels)
    return k, n, "fleiss"


@dataclass(frozen=True)
class Verbosity:
    """Whether winning goes with speaking more."""

    correlation: float
    """Pearson r between the FOR side's share of characters and a FOR win (decisive verdicts)."""
    p_value: float
    longer_side_won: float
    """Share of decisive verdicts (with unequal lengths) won by the side that spoke more."""
    n: int


def verbosity(
    labels: npt.ArrayLike, for_chars: npt.ArrayLike, against_chars: npt.ArrayLike
) -> Verbosity:
    """Correlation of winning with turn length, over decisive verdicts.

    >>> v = verbosity([A_WINS, B_WINS, A_WINS, B_WINS], [900, 100, 800, 300], [100, 900, 200, 700])
    >>> v.longer_side_won, v.n
    (1.0, 4)
    """
    y = np.asarray(labels, dtype=np.int64)
    f = np.asarray(for_chars, dtype=np.float64)
    g = np.asarray(against_chars, dtype=np.float64)
    keep = ((y == A_WINS) | (y == B_WINS)) & (f + g > 0)
    y, f, g = y[keep], f[keep], g[keep]
    n = int(y.size)
    won_for = (y == A_WINS).astype(np.float64)
    unequal = f != g
    longer = (
        float(np.mean((f[unequal] > g[unequal]) == (won_for[unequal] == 1.0)))
        if np.any(unequal)
        else math.nan
    )
    share = f / (f + g)
    if n < 3 or np.ptp(share) == 0 or np.ptp(won_for) == 0:
        return Verbosity(math.nan, math.nan, longer, n)
    r = pearsonr(share, won_for)
    return Verbosity(float(r.statistic), float(r.pvalue), longer, n)


@dataclass(frozen=True)
class SwapConsistency:
    """Agreement of one judge with itself when the debaters' labels are swapped."""

    agreement: float
    kappa: float
    n: int


def swap_consistency(original: npt.ArrayLike, swapped: npt.ArrayLike) -> SwapConsistency:
    """Share of debates (both presentations valid) with the same verdict, and Cohen's kappa.

    `original` and `swapped` are one judge's labels per debate with FOR called Debater A and
    with FOR called Debater B (mapped back to FOR and AGAINST), MISSING where not valid.

    >>> s = swap_consistency([A_WINS, B_WINS, A_WINS, MISSING], [A_WINS, B_WINS, B_WINS, A_WINS])
    >>> round(s.agreement, 3), s.n
    (0.667, 3)
    """
    a = np.asarray(original, dtype=np.int64)
    b = np.asarray(swapped, dtype=np.int64)
    both = (a != MISSING) & (b != MISSING)
    n = int(np.sum(both))
    agreement = float(np.mean(a[both] == b[both])) if n else math.nan
    k, _ = cohen_kappa(a, b)
    return SwapConsistency(agreement, k, n)
