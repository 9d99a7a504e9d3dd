"""eval: ratings (Elo, Bradley-Terry with bootstrap CIs), PCP/BBQ metrics, judge quality, reports.

It reads what the engine recorded (through `storage`) and never calls a model.

- `eval.ratings`: the pure rating math (battles aggregated into counts, Bradley-Terry with a
  FOR-side advantage and two tie models, the bootstrap, online and bootstrapped Elo, win matrices).
- `eval.compare`: B - A in rating with a paired bootstrap interval, and a head-to-head record by
  side (`arena rank --compare A B`).
- `eval.judges`: judge quality (side bias, Cohen/Fleiss kappa, verbosity, swap consistency).
- `eval.graph`: the majority-win digraph and its intransitive cycles.
- `eval.report`: `build_report`, everything `arena rank` shows read from the store as a typed
  `RankReport` (pydantic; its JSON schema is generated into docs/rank.md), and its renderings:
  JSON, the terminal table, Markdown and the self-contained HTML report with SVG figures.
- `eval.bbq`: BBQ's accuracy and bias scores (s_DIS, s_AMB and its decomposition) per category,
  with stratified bootstrap intervals and paired comparisons, as a typed `BBQReport`;
  `eval.bbq_store` builds one from a BBQ run in the store (mid-run too); `eval.bbq_render`
  renders it (terminal, Markdown, JSON, HTML).

- `eval.pcp`, `eval.pcp_store`, `eval.pcp_render`: PCP consistency, the same way.
- `eval.transcripts`, `eval.transcripts_render`: debates as recorded (`arena show`); `eval.site`:
  the static site of them (`arena view`); `eval.training_report`: `arena train report`.

See docs/rank.md, docs/bbq.md and docs/pcp.md. The rating names below are imported from
`eval.ratings` on first use, so that the other parts load without SciPy.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eval.ratings import (
        A_WINS,
        B_WINS,
        ELO_PER_NAT,
        TIE,
        Bootstrap,
        BTFit,
        Counts,
        EloBootstrap,
        aggregate,
        bootstrap,
        elo_bootstrap,
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
    "EloBootstrap",
    "aggregate",
    "bootstrap",
    "elo_bootstrap",
    "fit_bradley_terry",
    "online_elo",
    "win_matrices",
]


def __getattr__(name: str) -> Any:
    """The rating names above, imported from `eval.ratings` when first asked for: importing
    any other part of `eval` (`arena show`, `arena view`) does not load SciPy (0.4 s)."""
    if name in __all__:
        import eval.ratings

        return getattr(eval.ratings, name)
    raise AttributeError(f"module 'eval' has no attribute {name!r}")
