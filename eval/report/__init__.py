"""The report of `arena rank`: typed models, built from the store, rendered four ways.

- `eval.report.models`: the pydantic models (`RankReport` and its parts), one docstring per field;
  `report_json_schema()` is the JSON schema that `scripts/rank_schema.py` writes into docs/rank.md.
- `eval.report.build`: `build_report(db, RankOptions(...))` reads the selected debates and
  verdicts, rates them (`eval.ratings`), judges the judges (`eval.judges`) and finds cycles
  (`eval.graph`).
- `eval.report.render`: JSON, the rich terminal table, Markdown and the self-contained HTML page.
- `eval.report.figures`: the HTML page's inline-SVG charts.

Every output is rendered from one `RankReport`, so they never disagree.
"""

from eval.report.build import RankOptions, build_report
from eval.report.models import JSON_SCHEMA_VERSION, RankReport, report_json_schema
from eval.report.render import html, json_text, markdown, terminal

__all__ = [
    "JSON_SCHEMA_VERSION",
    "RankOptions",
    "RankReport",
    "build_report",
    "html",
    "json_text",
    "markdown",
    "report_json_schema",
    "terminal",
]
