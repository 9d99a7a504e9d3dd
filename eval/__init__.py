"""eval: ratings (Elo, Bradley-Terry with bootstrap CIs), PCP/BBQ metrics, judge quality, reports.

It reads what the engine recorded (through `storage`) and never calls a model.

Written so far: `eval.ratings`, the pure rating math behind `arena rank` (battles aggregated into
counts, the Bradley-Terry fit with a FOR-side advantage and two tie models, the bootstrap with
percentile intervals and ranks, online Elo, win matrices). PCP/BBQ metrics and reports are not
written yet.
"""

from eval.ratings import (
    A_WINS,
    B_WINS,
    ELO_PER_NAT,
    TIE,
    Bootstrap,
    BTFit,
    Counts,
    aggregate,
    bootstrap,
    fit_bradley_terry,
    online_elo,
    win_matrices,
)

__all__ = [
    "A_WINS",
    "B_WINS",
    "ELO_PER_NAT",
    "TIE",
    "BTFit",
    "Bootstrap",
    "Counts",
    "aggregate",
    "bootstrap",
    "fit_bradley_terry",
    "online_elo",
    "win_matrices",
]
