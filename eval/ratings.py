"""Rating math for `arena rank`: Bradley-Terry with bootstrap intervals, online Elo, win matrices.

A *battle* is one valid verdict: model A argued FOR, model B AGAINST, and the judge said
A wins (`A_WINS`), B wins (`B_WINS`) or `TIE`. Everything here is pure numpy/scipy math on
integer arrays of model indices; reading the DuckDB file and naming models is the caller's job.

- `aggregate` turns battles into counts per (a, b, outcome) cell. Every fit works on those
  counts, never on one row per verdict: 1,000,000 verdicts among 20 models are at most
  20 * 19 * 3 = 1,140 cells.
- `fit_bradley_terry` is the maximum-likelihood Bradley-Terry fit (L-BFGS-B, analytic gradient)
  with a FOR-side advantage and ties either as half a win each way or by Davidson's model.
- `bootstrap` resamples battles with replacement (multinomial weights on the cells, which is the
  same distribution) and refits all rounds at once by batched Newton steps; percentile intervals
  and a conservative rank. 1,000 rounds on 1,000,000 verdicts among 20 models take 0.4-0.9 s
  on the shared 2-core machine (bench/ratings.py).
- `online_elo` is the classic sequential Elo update: order-dependent, shown as a time series only;
  Bradley-Terry is the rating.
- `elo_bootstrap` (the `--method elo` leaderboard) runs online Elo over resampled, shuffled
  battles and reports the median rating with percentile intervals.
- `win_matrices` gives predicted and observed win rates between every pair of models.

Scale: ratings are Elo points, 400 per factor 10 in odds, centred on 1000 (mean 1000, or the
`anchor` model at exactly 1000). The side advantage is in Elo points too.

Simplified on purpose:
- Identifiability: strengths are only defined up to a common shift, so the objective carries a
  tiny ridge term `l2 / 2 * sum(s**2)` (on the mean negative log-likelihood, default 1e-6). It
  pins the mean strength at 0 and keeps a model that won or lost every battle finite; against an
  unpenalised reference fit the tests measure differences of a few thousandths of a point.
  Neither the side advantage nor the Davidson tie parameter is penalised.
- The bootstrap unit is a verdict, not a debate: several judges' verdicts on one debate are
  resampled independently, so intervals can be narrower than a debate-clustered bootstrap's
  when judges agree with each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

A_WINS = 0
B_WINS = 1
TIE = 2

ELO_PER_NAT = 400.0 / math.log(10.0)
"""Elo points per unit of natural log-odds (about 173.7)."""

Ties = Literal["half", "davidson"]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Counts:
    """Battles aggregated into cells: `count[i]` battles had (a[i], b[i], outcome[i])."""

    a: IntArray
    b: IntArray
    outcome: IntArray
    count: IntArray

    @property
    def total(self) -> int:
        """Number of battles."""
        return int(self.count.sum())


@dataclass(frozen=True)
class BTFit:
    """A Bradley-Terry fit.

    `ratings` are Elo points (mean 1000, or the anchor at 1000); `side_advantage` is the FOR
    side's edge in Elo points (0 when not fitted); `log_likelihood` is that of the (unpenalised)
    model on the counts, with ties as half a win each way for `ties="half"`; `tie_param` is
    Davidson's nu (None for `ties="half"`).
    """

    ratings: FloatArray
    side_advantage: float
    log_likelihood: float
    ties: Ties
    tie_param: float | None


@dataclass(frozen=True)
class Bootstrap:
    """Point fit, percentile intervals and ranks; `samples` has one row of ratings per round."""

    fit: BTFit
    lower: FloatArray
    upper: FloatArray
    rank: IntArray
    side_lower: float
    side_upper: float
    samples: FloatArray
    side_samples: FloatArray


def aggregate(
    model_a: npt.ArrayLike, model_b: npt.ArrayLike, outcome: npt.ArrayLike, n_models: int
) -> Counts:
    """Count battles per (model_a, model_b, outcome) cell; A is the FOR side.

    >>> c = aggregate([0, 0, 1, 0], [1, 1, 0, 1], [A_WINS, A_WINS, TIE, B_WINS], n_models=2)
    >>> c.a.tolist(), c.b.tolist(), c.outcome.tolist(), c.count.tolist()
    ([0, 0, 1], [1, 1, 0], [0, 1, 2], [2, 1, 1])
    """
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    o = np.asarray(outcome, dtype=np.int64)
    if not (a.shape == b.shape == o.shape) or a.ndim != 1:
        raise ValueError("model_a, model_b and outcome must be 1-d arrays of the same length")
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_models):
        raise ValueError(f"model indices must lie in 0..{n_models - 1}")
    if a.size and (o.min() < 0 or o.max() > TIE):
        raise ValueError("outcome must be A_WINS (0), B_WINS (1) or TIE (2)")
    if np.any(a == b):
        raise ValueError("a model cannot battle itself")
    code = (a * n_models + b) * 3 + o
    cells, count = np.unique(code, return_counts=True)
    return Counts(
        a=cells // 3 // n_models,
        b=cells // 3 % n_models,
        outcome=cells % 3,
        count=count.astype(np.int64),
    )


class _Objective:
    """Mean negative log-likelihood for R independent weightings of the same cells.

    Parameters per round: n_models strengths (natural log scale), then the side advantage h if
    fitted, then log(nu) for Davidson. Rounds are independent, so minimising the sum over rounds
    fits every round at once (the bootstrap's batched refit).
    """

    def __init__(
        self, counts: Counts, n_models: int, ties: Ties, side_advantage: bool, l2: float
    ) -> None:
        self.n = n_models
        self.ties = ties
        self.side = side_advantage
        self.l2 = l2
        self.k = n_models + int(side_advantage) + int(ties == "davidson")
        c = counts.a.size
        # xvec: how each cell's log-odds x = s_a - s_b + h depend on the parameters
        self.xvec = np.zeros((c, self.k))
        self.xvec[np.arange(c), counts.a] = 1.0
        self.xvec[np.arange(c), counts.b] = -1.0
        if side_advantage:
            self.xvec[:, n_models] = 1.0
        o = counts.outcome
        self.is_a = (o == A_WINS).astype(np.float64)
        self.is_b = (o == B_WINS).astype(np.float64)
        self.is_t = (o == TIE).astype(np.float64)
        # "half": each cell is a logistic observation with target share fa of a win, and all
        # cells of one (a, b) pair (contiguous: `aggregate` sorts them) merge into one.
        self.fa = self.is_a + 0.5 * self.is_t
        pair = counts.a * n_models + counts.b
        self.starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        if ties == "half":
            self.xvec = self.xvec[self.starts]
        # each row: the flattened outer product xvec xvec^T, for Hessians by one matrix product
        self.outer = np.einsum("ci,cj->cij", self.xvec, self.xvec).reshape(self.xvec.shape[0], -1)
        self.ridge = np.zeros(self.k)
        self.ridge[:n_models] = l2

    def unpack(self, theta: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Split (R, k) parameters into strengths (R, n), side h (R,), log-nu (R,)."""
        s = theta[:, : self.n]
        zero = np.zeros(theta.shape[0])
        h = theta[:, self.n] if self.side else zero
        lognu = theta[:, -1] if self.ties == "davidson" else zero
        return s, h, lognu

    def evaluate(
        self, theta: FloatArray, w: FloatArray, hessian: bool = False
    ) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        """Per-round objective (R,), gradient (R, k) and, if asked, Hessian (R, k, k).

        The objective is the mean NLL (w is counts / total, shape (R, cells)) plus the ridge.
        """
        x = theta @ self.xvec.T  # (R, cells or pairs): log-odds of A over B
        grad = np.zeros_like(theta)
        hess = None
        if self.ties == "half":
            wins = np.add.reduceat(w * self.fa, self.starts, axis=1)  # per (a, b) pair
            w = np.add.reduceat(w, self.starts, axis=1)
            # log p = -log(1 + e^-x), log(1 - p) = -log(1 + e^x)
            nll = wins * np.logaddexp(0.0, -x) + (w - wins) * np.logaddexp(0.0, x)
            p = 0.5 * (1.0 + np.tanh(0.5 * x))  # sigmoid, overflow-free
            dx = w * p - wins
            if hessian:
                hess = self._outer(w * p * (1.0 - p))
        else:
            u = 0.5 * x
            ln = theta[:, -1:]
            log_d = np.logaddexp(np.logaddexp(u, -u), ln)
            nll = w * (log_d - self.is_a * u + self.is_b * u - self.is_t * ln)
            pa = np.exp(u - log_d)
            pb = np.exp(-u - log_d)
            pt = np.exp(ln - log_d)
            dx = w * (0.5 * (pa - pb) - 0.5 * (self.is_a - self.is_b))
            grad[:, -1] = (w * (pt - self.is_t)).sum(axis=1)
            if hessian:
                hess = self._outer(w * 0.25 * (pa + pb - (pa - pb) ** 2))
                cross = (w * -0.5 * (pa - pb) * pt) @ self.xvec
                hess[:, -1, :] += cross
                hess[:, :, -1] += cross
                hess[:, -1, -1] += (w * pt * (1.0 - pt)).sum(axis=1)
        grad += dx @ self.xvec + self.ridge * theta
        if hess is not None:
            hess += np.diag(self.ridge)
        value = nll.sum(axis=1) + 0.5 * (self.ridge * theta * theta).sum(axis=1)
        return value, grad, hess

    def _outer(self, v: FloatArray) -> FloatArray:
        """sum over cells of v[r, c] * xvec[c] xvec[c]^T, for every round r."""
        k = self.xvec.shape[1]
        out: FloatArray = (v @ self.outer).reshape(v.shape[0], k, k)
        return out

    def minimize(self, w: FloatArray, start: FloatArray) -> FloatArray:
        """Minimise every round's objective at once with L-BFGS-B; returns (R, k) parameters."""
        shape = start.shape

        def f(flat: FloatArray) -> tuple[float, FloatArray]:
            value, grad, _ = self.evaluate(flat.reshape(shape), w)
            return float(value.sum()), grad.ravel()

        res = minimize(
            f,
            start.ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20_000, "ftol": 1e-15, "gtol": 1e-10 * shape[0] ** 0.5},
        )
        out: FloatArray = np.asarray(res.x, dtype=np.float64).reshape(shape)
        return out

    def newton(self, w: FloatArray, start: FloatArray, gtol: float = 1e-10) -> FloatArray:
        """Damped Newton steps for every round at once, from a warm start near the optimum.

        Rounds still unconverged after 30 steps (none on ordinary data) go to `minimize`.
        """
        theta = start.copy()
        value, grad, hess = self.evaluate(theta, w, hessian=True)
        for _ in range(30):
            todo = np.abs(grad).max(axis=1) > gtol
            if not todo.any() or hess is None:
                break
            step = np.linalg.solve(hess[todo], grad[todo][:, :, None])[:, :, 0]
            alpha = np.ones(step.shape[0])
            for _ in range(30):  # halve the step where the objective went up
                cand = theta[todo] - alpha[:, None] * step
                cand_value = self.evaluate(cand, w[todo])[0]
                worse = ~(cand_value <= value[todo] + 1e-15)
                if not worse.any():
                    break
                alpha[worse] *= 0.5
            theta[todo] = cand
            value, grad, hess = self.evaluate(theta, w, hessian=True)
        left = np.abs(grad).max(axis=1) > gtol
        if left.any():
            theta[left] = self.minimize(w[left], theta[left])
        return theta


def _to_elo(s: FloatArray, anchor: int | None) -> FloatArray:
    """Natural-log strengths (R, n) to Elo: mean 1000, or the anchor column at 1000."""
    ref = s[:, anchor : anchor + 1] if anchor is not None else s.mean(axis=1, keepdims=True)
    out: FloatArray = 1000.0 + ELO_PER_NAT * (s - ref)
    return out


def _check(counts: Counts, n_models: int, anchor: int | None, ties: str) -> None:
    if ties not in ("half", "davidson"):
        raise ValueError(f"ties must be 'half' or 'davidson', not {ties!r}")
    if anchor is not None and not 0 <= anchor < n_models:
        raise ValueError(f"anchor must be a model index in 0..{n_models - 1}")
    if counts.total == 0:
        raise ValueError("no battles to fit")
    if ties == "davidson" and not np.any(counts.count[counts.outcome == TIE]):
        raise ValueError("ties='davidson' needs at least one tie; use ties='half'")


def fit_bradley_terry(
    counts: Counts,
    n_models: int,
    *,
    ties: Ties = "half",
    side_advantage: bool = True,
    anchor: int | None = None,
    l2: float = 1e-6,
) -> BTFit:
    """Maximum-likelihood Bradley-Terry ratings from aggregated battles.

    P(A beats B) = sigmoid(s_A - s_B + h), A being the FOR side and h the side advantage. With
    `ties="half"` a tie counts as half a win each way; with `ties="davidson"`,
    P(A) : P(B) : P(tie) = e^(x/2) : e^(-x/2) : nu for x = s_A - s_B + h.

    Model 0 won 3 of 4 battles against model 1, each side twice:

    >>> c = aggregate([0, 0, 1, 1], [1, 1, 0, 0], [A_WINS, A_WINS, B_WINS, A_WINS], 2)
    >>> fit = fit_bradley_terry(c, 2, side_advantage=False)
    >>> [round(r) for r in fit.ratings]  # odds 3:1 = 191 Elo points apart
    [1095, 905]
    >>> round(fit.log_likelihood, 3)  # 3 log(3/4) + log(1/4)
    -2.249
    >>> round(fit_bradley_terry(c, 2, side_advantage=False, anchor=1).ratings[0])
    1191
    """
    _check(counts, n_models, anchor, ties)
    obj = _Objective(counts, n_models, ties, side_advantage, l2)
    w = (counts.count / counts.total)[None, :]
    theta = obj.minimize(w, np.zeros((1, obj.k)))
    return _make_fit(obj, theta, counts, anchor)[0]


def _make_fit(
    obj: _Objective, theta: FloatArray, counts: Counts, anchor: int | None
) -> list[BTFit]:
    s, h, lognu = obj.unpack(theta)
    ratings = _to_elo(s, anchor)
    w = (counts.count / counts.total)[None, :]
    unpenalised = _Objective(counts, obj.n, obj.ties, obj.side, 0.0)
    ll = -unpenalised.evaluate(theta[:1], w)[0][0] * counts.total
    return [
        BTFit(
            ratings=ratings[r],
            side_advantage=float(ELO_PER_NAT * h[r]),
            log_likelihood=float(ll) if r == 0 else float("nan"),
            ties=obj.ties,
            tie_param=float(np.exp(lognu[r])) if obj.ties == "davidson" else None,
        )
        for r in range(theta.shape[0])
    ]


def bootstrap(
    counts: Counts,
    n_models: int,
    rounds: int = 1000,
    *,
    rng: np.random.Generator,
    ties: Ties = "half",
    side_advantage: bool = True,
    anchor: int | None = None,
    level: float = 0.95,
    l2: float = 1e-6,
    batch: int = 250,
) -> Bootstrap:
    """Bootstrap the Bradley-Terry fit: percentile intervals and ranks.

    Each round draws `counts.total` battles with replacement, i.e. multinomial weights on the
    cells, and refits on those counts. `batch` rounds are refitted together by damped Newton
    steps on the same objective as `fit_bradley_terry` (analytic gradient and Hessian, a batch of
    small linear solves), warm-started at the point fit; a round that does not converge falls
    back to L-BFGS-B. A model's rank is 1 plus
    the number of models whose lower bound exceeds its upper bound, so models whose intervals
    overlap share a rank.

    >>> c = aggregate([0, 1, 0, 2, 1, 2] * 20, [1, 0, 2, 0, 2, 1] * 20, [0, 1, 0, 2, 0, 1] * 20, 3)
    >>> bs = bootstrap(c, 3, rounds=200, rng=np.random.default_rng(0))
    >>> bs.rank.tolist()
    [1, 2, 3]
    >>> bool(np.all((bs.lower <= bs.fit.ratings) & (bs.fit.ratings <= bs.upper)))
    True
    """
    _check(counts, n_models, anchor, ties)
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    obj = _Objective(counts, n_models, ties, side_advantage, l2)
    total = counts.total
    w0 = (counts.count / total)[None, :]
    point = obj.minimize(w0, np.zeros((1, obj.k)))
    fit = _make_fit(obj, point, counts, anchor)[0]
    weights = rng.multinomial(total, counts.count / total, size=rounds) / total
    thetas = [
        obj.newton(wb, np.repeat(point, wb.shape[0], axis=0))
        for wb in np.array_split(weights, max(1, math.ceil(rounds / batch)))
    ]
    theta = np.concatenate(thetas)
    s, h, _ = obj.unpack(theta)
    samples = _to_elo(s, anchor)
    side = ELO_PER_NAT * h
    q = [50.0 * (1.0 - level), 50.0 * (1.0 + level)]
    lower, upper = np.percentile(samples, q, axis=0)
    side_lower, side_upper = np.percentile(side, q)
    rank = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
    return Bootstrap(
        fit=fit,
        lower=lower,
        upper=upper,
        rank=rank.astype(np.int64),
        side_lower=float(side_lower),
        side_upper=float(side_upper),
        samples=samples,
        side_samples=side,
    )


def online_elo(
    model_a: npt.ArrayLike,
    model_b: npt.ArrayLike,
    outcome: npt.ArrayLike,
    n_models: int,
    k: float = 32.0,
    initial: float = 1000.0,
) -> FloatArray:
    """Classic Elo updated battle by battle, in the order given; row t = ratings after battle t.

    Order-dependent (the same battles shuffled give other final ratings) and blind to the side
    advantage: a time series to look at, not the rating. A tie scores 0.5.

    >>> online_elo([0, 0], [1, 1], [A_WINS, TIE], 2).round(1).tolist()
    [[1016.0, 984.0], [1014.5, 985.5]]
    """
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    o = np.asarray(outcome, dtype=np.int64)
    score = np.where(o == A_WINS, 1.0, np.where(o == B_WINS, 0.0, 0.5))
    r = np.full(n_models, initial, dtype=np.float64)
    out = np.empty((a.size, n_models))
    for t in range(a.size):
        i, j = a[t], b[t]
        expected = 1.0 / (1.0 + 10.0 ** ((r[j] - r[i]) / 400.0))
        delta = k * (score[t] - expected)
        r[i] += delta
        r[j] -= delta
        out[t] = r
    return out


@dataclass(frozen=True)
class EloBootstrap:
    """Online Elo over resampled, reshuffled battles: the median final rating of each model and
    percentile intervals over the rounds; `samples` has one row of final ratings per round."""

    ratings: FloatArray
    lower: FloatArray
    upper: FloatArray
    rank: IntArray
    samples: FloatArray


def elo_bootstrap(
    model_a: npt.ArrayLike,
    model_b: npt.ArrayLike,
    outcome: npt.ArrayLike,
    n_models: int,
    rounds: int = 1000,
    *,
    rng: np.random.Generator,
    k: float = 32.0,
    level: float = 0.95,
) -> EloBootstrap:
    """Online Elo made less order-dependent: each round draws the battles with replacement in a
    random order and runs the Elo updates; the rating is the median over rounds.

    All rounds advance together (one numpy step per battle position), so the cost is about
    `len(battles)` small vector operations. Ranks follow the same rule as `bootstrap`.

    >>> e = elo_bootstrap([0] * 30 + [1] * 30, [1] * 30 + [0] * 30, [A_WINS] * 45 + [B_WINS] * 15,
    ...                   2, rounds=200, rng=np.random.default_rng(0))
    >>> bool(e.ratings[0] > e.ratings[1]), e.rank.tolist()
    (True, [1, 2])
    """
    a = np.asarray(model_a, dtype=np.int64)
    b = np.asarray(model_b, dtype=np.int64)
    o = np.asarray(outcome, dtype=np.int64)
    if a.size == 0:
        raise ValueError("no battles to rate")
    score = np.where(o == A_WINS, 1.0, np.where(o == B_WINS, 0.0, 0.5))
    r = np.full((rounds, n_models), 1000.0)
    rows = np.arange(rounds)
    for _ in range(a.size):
        pick = rng.integers(0, a.size, size=rounds)  # memory stays rounds x models
        i, j, s = a[pick], b[pick], score[pick]
        expected = 1.0 / (1.0 + 10.0 ** ((r[rows, j] - r[rows, i]) / 400.0))
        delta = k * (s - expected)
        r[rows, i] += delta
        r[rows, j] -= delta
    q = [50.0 * (1.0 - level), 50.0 * (1.0 + level)]
    lower, upper = np.percentile(r, q, axis=0)
    rank = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
    return EloBootstrap(np.median(r, axis=0), lower, upper, rank.astype(np.int64), r)


def win_matrices(fit: BTFit, counts: Counts, n_models: int) -> tuple[FloatArray, FloatArray]:
    """Predicted and observed score of row model against column model, sides pooled.

    Score = P(win) + P(tie) / 2. Predicted comes from the fit, averaged over the two side
    assignments; observed is the share of points won in the battles between the two (NaN where
    they never met). Diagonals are NaN.

    >>> c = aggregate([0, 1, 0], [1, 0, 1], [A_WINS, B_WINS, B_WINS], 2)
    >>> pred, obs = win_matrices(fit_bradley_terry(c, 2, side_advantage=False), c, 2)
    >>> round(float(obs[0, 1]), 3), round(float(pred[0, 1]), 3)
    (0.667, 0.667)
    """
    d = (fit.ratings[:, None] - fit.ratings[None, :]) / ELO_PER_NAT
    h = fit.side_advantage / ELO_PER_NAT
    pred = 0.5 * (_score(d + h, fit) + _score(d - h, fit))
    np.fill_diagonal(pred, np.nan)
    return pred, observed_scores(counts, n_models)


def head_to_head(counts: Counts, n_models: int) -> tuple[FloatArray, IntArray]:
    """Points scored by row model against column model (a tie is half a point each), and the
    number of battles between them; sides pooled.

    >>> points, games = head_to_head(aggregate([0, 1], [1, 0], [A_WINS, TIE], 2), 2)
    >>> points.tolist(), games.tolist()
    ([[0.0, 1.5], [0.5, 0.0]], [[0, 2], [2, 0]])
    """
    points = np.zeros((n_models, n_models))
    games = np.zeros((n_models, n_models), dtype=np.int64)
    share_a = np.where(counts.outcome == A_WINS, 1.0, np.where(counts.outcome == TIE, 0.5, 0.0))
    np.add.at(points, (counts.a, counts.b), counts.count * share_a)
    np.add.at(points, (counts.b, counts.a), counts.count * (1.0 - share_a))
    np.add.at(games, (counts.a, counts.b), counts.count)
    np.add.at(games, (counts.b, counts.a), counts.count)
    return points, games


def observed_scores(counts: Counts, n_models: int) -> FloatArray:
    """Share of the points won by row model against column model; NaN where they never met."""
    points, games = head_to_head(counts, n_models)
    with np.errstate(invalid="ignore", divide="ignore"):
        obs: FloatArray = np.where(games > 0, points / games, np.nan)
    np.fill_diagonal(obs, np.nan)
    return obs


def _score(x: FloatArray, fit: BTFit) -> FloatArray:
    """Expected score of a side whose log-odds over the other are x."""
    if fit.tie_param is None:
        out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
        return out
    e = np.exp(0.5 * x)
    return (e + 0.5 * fit.tie_param) / (e + 1.0 / e + fit.tie_param)
