"""Judges: models that read what a task produced and give verdicts or scores.

- `base`: the `Judge` interface (messages, call, parse, repair once) and `Reading`.
- `parse`: reading verdicts from replies (JSON, neutral letters, first-token log-probabilities).
- `debate`: debate judges, with their presentations (side labels, neutral labels in one or both
  orders) recorded as `verdicts.variant`.

Later tasks add their graders here, beside `debate`.
"""

from arena.judges.base import Asked, Judge, Reading
from arena.judges.debate import DebateJudge, Presentation, Recorded, combine
from arena.judges.parse import majority

__all__ = [
    "Asked",
    "DebateJudge",
    "Judge",
    "Presentation",
    "Reading",
    "Recorded",
    "combine",
    "majority",
]
