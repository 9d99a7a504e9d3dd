"""Tests of eval.ratings against an independent reference fit and on simulated tournaments.

The reference is deliberately naive: one row per verdict (a tie is two half-weight rows), a plain
logistic (or Davidson) likelihood written out again here, model 0 fixed at 0 for
identifiability, minimised by scipy's BFGS with finite-difference gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import kendalltau

from eval.ratings import (
    A_WINS,
    B_WINS,
    ELO_PER_NAT,
    TIE,
    Ties,
    aggregate,
    bootstrap,
    fit_bradley_terry,
    online_elo,
    win_matrices,
)

Battles = tuple[np.ndarray, np.ndarray, np.ndarray]


def simulate(
    rng: np.random.Generator,
    skills: np.ndarray,
    n: int,
    side: float = 0.0,
    nu: float | None = None,
) -> Battles:
    """Random pairings; outcomes from sigmoid(s_a - s_b + side), or Davidson with `nu`."""
    m = skills.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    x = skills[a] - skills[b] + side
    if nu is None:
        p_a = 1.0 / (1.0 + np.exp(-x))
        p_t = np.zeros(n)
    else:
        d = np.exp(x / 2) + np.exp(-x / 2) + nu
        p_a, p_t = np.exp(x / 2) / d, nu / d
    u = rng.random(n)
    o = np.where(u < p_a, A_WINS, np.where(u < p_a + p_t, TIE, B_WINS))
    return a, b, o


def true_elo(skills: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1000.0 + ELO_PER_NAT * (skills - skills.mean())
    return out


def reference_fit(battles: Battles, m: int, ties: str) -> tuple[np.ndarray, float]:
    """Expanded one-row-per-verdict fit, no analytic gradient; returns (Elo ratings, side Elo)."""
    a, b, o = battles
    if ties == "half":
        # a tie becomes a half-weight win and a half-weight loss
        rows_a = np.concatenate([a, a[o == TIE]])
        rows_b = np.concatenate([b, b[o == TIE]])
        y = np.concatenate([(o == A_WINS) * 1.0, np.zeros(int((o == TIE).sum()))])
        wt = np.concatenate([np.where(o == TIE, 0.5, 1.0), np.full(int((o == TIE).sum()), 0.5)])
        y[: a.size][o == TIE] = 1.0

        def nll(p: np.ndarray) -> float:
            s = np.concatenate([[0.0], p[: m - 1]])
            x = s[rows_a] - s[rows_b] + p[-1]
            ll = y * -np.logaddexp(0, -x) + (1 - y) * -np.logaddexp(0, x)
            return float(-(wt * ll).sum())

        start = np.zeros(m)
    else:

        def nll(p: np.ndarray) -> float:
            s = np.concatenate([[0.0], p[: m - 1]])
            u = (s[a] - s[b] + p[m - 1]) / 2
            log_nu = p[m]
            log_d = np.log(np.exp(u) + np.exp(-u) + np.exp(log_nu))
            ll = np.where(o == A_WINS, u, np.where(o == B_WINS, -u, log_nu)) - log_d
            return float(-ll.sum())

        start = np.zeros(m + 1)
    res = minimize(nll, start, method="BFGS", options={"gtol": 1e-5})
    s = np.concatenate([[0.0], res.x[: m - 1]])
    return true_elo(s), float(ELO_PER_NAT * res.x[m - 1])


def test_aggregate_counts_every_battle_once() -> None:
    rng = np.random.default_rng(1)
    a, b, o = simulate(rng, np.zeros(5), 3000, nu=1.0)
    c = aggregate(a, b, o, 5)
    assert c.total == 3000
    assert c.a.size <= 5 * 4 * 3
    for i in range(0, c.a.size, 7):
        mask = (a == c.a[i]) & (b == c.b[i]) & (o == c.outcome[i])
        assert mask.sum() == c.count[i]
    with pytest.raises(ValueError, match="itself"):
        aggregate([0], [0], [A_WINS], 2)
    with pytest.raises(ValueError, match="indices"):
        aggregate([0], [2], [A_WINS], 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_half_ties_fit_equals_expanded_logistic_regression(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = 7
    skills = rng.normal(0, 0.8, m)
    a, b, o = simulate(rng, skills, 1500, side=0.3, nu=0.6)  # ties included
    fit = fit_bradley_terry(aggregate(a, b, o, m), m)
    ref, ref_side = reference_fit((a, b, o), m, "half")
    np.testing.assert_allclose(fit.ratings, ref, atol=0.5)
    assert abs(fit.side_advantage - ref_side) < 0.5
    assert abs(fit.ratings.mean() - 1000) < 1e-6


def test_davidson_fit_equals_expanded_reference_and_recovers_truth() -> None:
    rng = np.random.default_rng(3)
    m = 6
    skills = np.linspace(-1, 1, m)
    a, b, o = simulate(rng, skills, 20_000, side=0.2, nu=0.8)
    c = aggregate(a, b, o, m)
    fit = fit_bradley_terry(c, m, ties="davidson")
    ref, ref_side = reference_fit((a, b, o), m, "davidson")
    np.testing.assert_allclose(fit.ratings, ref, atol=0.5)
    assert abs(fit.side_advantage - ref_side) < 0.5
    assert fit.tie_param is not None and abs(fit.tie_param - 0.8) < 0.05
    np.testing.assert_allclose(fit.ratings, true_elo(skills), atol=25)
    assert abs(fit.side_advantage - 0.2 * ELO_PER_NAT) < 10
    # Davidson's log-likelihood is a real 3-outcome likelihood: below the half-tie one here
    assert fit.log_likelihood < fit_bradley_terry(c, m).log_likelihood
    with pytest.raises(ValueError, match="tie"):
        fit_bradley_terry(aggregate([0], [1], [A_WINS], 2), 2, ties="davidson")


def test_side_advantage_recovered_and_anchor() -> None:
    rng = np.random.default_rng(4)
    skills = np.linspace(-1, 1, 8)
    a, b, o = simulate(rng, skills, 20_000, side=0.4)
    c = aggregate(a, b, o, 8)
    fit = fit_bradley_terry(c, 8)
    assert abs(fit.side_advantage - 0.4 * ELO_PER_NAT) < 15  # about 5 standard errors
    no_side = fit_bradley_terry(c, 8, side_advantage=False)
    assert no_side.side_advantage == 0.0 and no_side.log_likelihood < fit.log_likelihood
    anchored = fit_bradley_terry(c, 8, anchor=3)
    assert anchored.ratings[3] == pytest.approx(1000.0)
    np.testing.assert_allclose(np.diff(anchored.ratings), np.diff(fit.ratings), atol=1e-6)


def test_separated_model_stays_finite() -> None:
    c = aggregate([0, 0, 1, 2, 1], [1, 2, 0, 0, 2], [A_WINS, A_WINS, B_WINS, B_WINS, TIE], 3)
    fit = fit_bradley_terry(c, 3)  # model 0 won everything
    assert np.all(np.isfinite(fit.ratings)) and fit.ratings.argmax() == 0


def test_bootstrap_reproducible_and_contains_point() -> None:
    rng = np.random.default_rng(5)
    a, b, o = simulate(rng, np.linspace(-1, 1, 6), 800, side=0.2, nu=0.5)
    c = aggregate(a, b, o, 6)
    one = bootstrap(c, 6, rounds=200, rng=np.random.default_rng(42))
    two = bootstrap(c, 6, rounds=200, rng=np.random.default_rng(42))
    other = bootstrap(c, 6, rounds=200, rng=np.random.default_rng(43))
    np.testing.assert_array_equal(one.samples, two.samples)
    assert not np.array_equal(one.samples, other.samples)
    assert np.all((one.lower <= one.fit.ratings) & (one.fit.ratings <= one.upper))
    assert one.side_lower <= one.fit.side_advantage <= one.side_upper
    assert one.samples.shape == (200, 6)
    # ranks: 1 + number of models whose lower bound is above this one's upper bound
    for i in range(6):
        assert one.rank[i] == 1 + int(np.sum(one.lower > one.upper[i]))
    dav = bootstrap(c, 6, rounds=50, rng=np.random.default_rng(0), ties="davidson")
    assert np.all((dav.lower <= dav.fit.ratings) & (dav.fit.ratings <= dav.upper))


@pytest.mark.parametrize("ties", ["half", "davidson"])
def test_batched_bootstrap_refit_equals_single_fits(ties: Ties) -> None:
    """The bootstrap's batched Newton refits agree with one L-BFGS-B fit per round."""
    rng = np.random.default_rng(6)
    a, b, o = simulate(rng, np.linspace(-1, 1, 5), 600, side=0.3, nu=0.5)
    c = aggregate(a, b, o, 5)
    bs = bootstrap(c, 5, rounds=5, rng=np.random.default_rng(7), ties=ties)
    draws = np.random.default_rng(7).multinomial(c.total, c.count / c.total, size=5)
    for r in range(5):
        keep = draws[r] > 0
        cr = type(c)(c.a[keep], c.b[keep], c.outcome[keep], draws[r][keep])
        single = fit_bradley_terry(cr, 5, ties=ties)
        np.testing.assert_allclose(bs.samples[r], single.ratings, atol=0.01)
        assert bs.side_samples[r] == pytest.approx(single.side_advantage, abs=0.01)


def test_bootstrap_with_separated_models_stays_finite() -> None:
    c = aggregate([0, 0, 1, 2, 1], [1, 2, 0, 0, 2], [A_WINS, A_WINS, B_WINS, B_WINS, TIE], 3)
    bs = bootstrap(c, 3, rounds=50, rng=np.random.default_rng(0))
    assert np.all(np.isfinite(bs.samples)) and bs.rank[0] == 1


def test_synthetic_tournaments_rank_and_coverage() -> None:
    """8 models with known skills, 800 battles each tournament, 40 seeded tournaments.

    Measured coverage of the nominal 95% percentile intervals here is about 0.93 (the percentile
    bootstrap under-covers a little at this size); the test asks for 0.90.
    """
    skills = np.linspace(-1.5, 1.5, 8)
    truth = true_elo(skills)
    covered, total, taus = 0, 0, []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        a, b, o = simulate(rng, skills, 800)
        bs = bootstrap(aggregate(a, b, o, 8), 8, rounds=200, rng=rng)
        taus.append(kendalltau(bs.fit.ratings, skills).statistic)
        covered += int(np.sum((bs.lower <= truth) & (truth <= bs.upper)))
        total += 8
    assert taus[0] >= 0.9
    assert np.mean(taus) >= 0.9
    print(f"coverage {covered / total:.3f}, mean tau {np.mean(taus):.3f}")
    assert covered / total >= 0.90, covered / total


def test_planted_side_bias_is_detected() -> None:
    rng = np.random.default_rng(8)
    a, b, o = simulate(rng, np.linspace(-1, 1, 8), 600, side=0.5)
    bs = bootstrap(aggregate(a, b, o, 8), 8, rounds=300, rng=rng)
    assert bs.side_lower > 0
    assert bs.side_lower <= 0.5 * ELO_PER_NAT <= bs.side_upper
    # and no bias is "detected" when none was planted
    a, b, o = simulate(rng, np.linspace(-1, 1, 8), 600, side=0.0)
    bs = bootstrap(aggregate(a, b, o, 8), 8, rounds=300, rng=rng)
    assert bs.side_lower < 0 < bs.side_upper


def test_online_elo_is_zero_sum_and_order_dependent() -> None:
    rng = np.random.default_rng(9)
    a, b, o = simulate(rng, np.linspace(-1, 1, 4), 200)
    series = online_elo(a, b, o, 4)
    assert series.shape == (200, 4)
    np.testing.assert_allclose(series.sum(axis=1), 4000.0)
    order = rng.permutation(200)
    shuffled = online_elo(a[order], b[order], o[order], 4)
    assert not np.allclose(series[-1], shuffled[-1])


def test_win_matrices() -> None:
    rng = np.random.default_rng(10)
    skills = np.linspace(-1, 1, 5)
    a, b, o = simulate(rng, skills, 20_000, side=0.3, nu=0.5)
    c = aggregate(a, b, o, 5)
    all_ties: tuple[Ties, ...] = ("half", "davidson")
    for ties in all_ties:
        fit = fit_bradley_terry(c, 5, ties=ties)
        pred, obs = win_matrices(fit, c, 5)
        off = ~np.eye(5, dtype=bool)
        np.testing.assert_allclose((pred + pred.T)[off], 1.0)
        np.testing.assert_allclose((obs + obs.T)[off], 1.0)
        assert np.nanmax(np.abs(pred - obs)) < 0.04
    i, j = 0, 4
    games = ((a == i) & (b == j)) | ((a == j) & (b == i))
    points = np.sum(np.where(a[games] == i, o[games] == A_WINS, o[games] == B_WINS))
    points += 0.5 * np.sum(o[games] == TIE)
    assert obs[i, j] == pytest.approx(points / games.sum())
