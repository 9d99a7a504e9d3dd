"""Bootstrap Bradley-Terry on aggregated counts against the one-row-per-verdict fit, same run.

1,000,000 simulated verdicts among 20 models (random pairings, a FOR-side advantage, ties from
Davidson's model), then `eval.ratings.bootstrap` with 1,000 rounds: aggregation, the point fit
and every refit, timed end to end. Goal: <= 2 s on the standard 2-core machine.

Baseline, measured in the same run on `--baseline-rounds` rounds and extrapolated to the same
number of rounds: the usual implementation, one row per verdict (a tie as two half-weight rows),
each round resampling 1,000,000 rows with replacement and fitting the same logistic likelihood
with the same analytic gradient and L-BFGS-B, warm-started at the point fit.

    python bench/ratings.py
    python bench/ratings.py --verdicts 100000 --rounds 100   # smoke run
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.optimize import minimize

from eval.ratings import A_WINS, B_WINS, TIE, aggregate, bootstrap, fit_bradley_terry


def simulate(rng: np.random.Generator, n_models: int, n: int) -> tuple[np.ndarray, ...]:
    skills = np.linspace(-1.5, 1.5, n_models)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    x = skills[a] - skills[b] + 0.2
    d = np.exp(x / 2) + np.exp(-x / 2) + 0.5
    p_a, p_t = np.exp(x / 2) / d, 0.5 / d
    u = rng.random(n)
    o = np.where(u < p_a, A_WINS, np.where(u < p_a + p_t, TIE, B_WINS))
    return a, b, o


def expanded_fit(a: np.ndarray, b: np.ndarray, y: np.ndarray, wt: np.ndarray, m: int,
                 start: np.ndarray) -> np.ndarray:  # fmt: skip
    """Logistic regression on one row per verdict: strengths and side, analytic gradient."""
    n = wt.sum()

    def f(p: np.ndarray) -> tuple[float, np.ndarray]:
        x = p[a] - p[b] + p[m]
        nll = wt * (y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x))
        g = wt * (0.5 * (1 + np.tanh(0.5 * x)) - y) / n
        grad = np.bincount(a, g, m) - np.bincount(b, g, m) + 1e-6 * p[:m]
        value = nll.sum() / n + 0.5e-6 * float(p[:m] @ p[:m])
        return float(value), np.append(grad, g.sum())

    res = minimize(f, start, jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9})
    return np.asarray(res.x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    m = args.models
    a, b, o = simulate(np.random.default_rng(args.seed), m, args.verdicts)

    t0 = time.perf_counter()
    counts = aggregate(a, b, o, m)
    t1 = time.perf_counter()
    bs = bootstrap(counts, m, args.rounds, rng=np.random.default_rng(args.seed))
    t2 = time.perf_counter()
    ours = t2 - t0
    print(f"{args.verdicts:,} verdicts, {m} models, {counts.a.size} cells, {os.cpu_count()} CPUs")
    print(f"aggregate {t1 - t0:.3f} s, bootstrap {args.rounds} rounds {t2 - t1:.3f} s")
    print(
        f"counts: {ours:.2f} s for {args.rounds} rounds ({1e3 * ours / args.rounds:.2f} ms/round)"
    )
    print(f"side advantage {bs.fit.side_advantage:.1f} [{bs.side_lower:.1f}, {bs.side_upper:.1f}]")
    width = float(np.median(bs.upper - bs.lower))
    print(f"median 95% interval width {width:.2f} Elo points")

    # Baseline: one row per verdict, the same likelihood, gradient and optimiser.
    tie = o == TIE
    ra = np.concatenate([a, a[tie]])
    rb = np.concatenate([b, b[tie]])
    y = np.concatenate([np.where(tie, 1.0, (o == A_WINS) * 1.0), np.zeros(int(tie.sum()))])
    wt = np.concatenate([np.where(tie, 0.5, 1.0), np.full(int(tie.sum()), 0.5)])
    point = fit_bradley_terry(counts, m)
    start = np.append((point.ratings - 1000) * np.log(10) / 400, point.side_advantage / 173.7)
    rng = np.random.default_rng(args.seed)
    t3 = time.perf_counter()
    for _ in range(args.baseline_rounds):
        # resample verdicts: a verdict's rows (two for a tie) travel together
        pick = np.bincount(rng.integers(0, args.verdicts, args.verdicts), minlength=args.verdicts)
        w = wt * np.concatenate([pick, pick[tie]])
        expanded_fit(ra, rb, y, w, m, start)
    per_round = (time.perf_counter() - t3) / args.baseline_rounds
    baseline = per_round * args.rounds
    print(
        f"one row per verdict: {per_round:.3f} s/round over {args.baseline_rounds} rounds, "
        f"{baseline:.0f} s extrapolated to {args.rounds} rounds"
    )
    print(f"ratio: counts {baseline / ours:.0f}x faster")


if __name__ == "__main__":
    main()
