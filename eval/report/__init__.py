"""The report of `arena rank`: typed models, built from the store, rendered four ways.

- `eval.report.models`: the pydantic models (`RankReport` and its parts), one docstring per field;
  `report_json_schema()` is the JSON schema that `scripts/rank_schema.py` writes into docs/rank.md.
- `eval.report.build`: `build_report(db, RankOptions(...))` reads the selected debates and
  verdicts, rates them (`eval.ratings`), judges the judges (`eval.judges`) and finds cycles
  (`eval.graph`); `build_comparison` is `arena rank --compare A B` (B - A, paired, and the
  head-to-head record: `eval.compare`).
- `eval.report.render`: JSON, the rich terminal table, Markdown and the self-contained HTML page.
- `eval.report.figures`: the HTML page's inline-SVG charts.

Every output is rendered from one `RankReport`, so they never disagree.
"""

from eval.report.build import RankOptions, build_comparison, build_report
from eval.report.models import JSON_SCHEMA_VERSION, Comparison, RankReport, report_json_schema
from eval.report.render import (
    comparison_json,
    comparison_markdown,
    comparison_terminal,
    html,
    json_text,
    markdown,
    terminal,
)

__all__ = [
    "JSON_SCHEMA_VERSION",
    "Comparison",
    "RankOptions",
    "RankReport",
    "build_comparison",
    "build_report",
    "comparison_json",
    "comparison_markdown",
    "comparison_terminal",
    "html",
    "json_text",
    "markdown",
    "report_json_schema",
    "terminal",
]
