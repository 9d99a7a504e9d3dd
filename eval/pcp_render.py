"""`arena pcp report` as a terminal table, Markdown or a self-contained HTML page.

The main table has the published layout, model | SC | HC | Average, each with its 95% interval,
and beside it what the published protocol does not show: SC with the left response shown first
only (the published protocol's order), the order disagreement, the direction shares and the lean.
Then HC left and right, per-template and per-valence tables, even-handedness, comparisons, and
the readings left out as unreadable.

Simplified on purpose: the HTML page is the Markdown tables as HTML tables with inline CSS; no
plots.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from eval.bbq import Interval
from eval.pcp_store import PCPReport


def _pct(x: Interval) -> str:
    if x.value is None:
        return "-"
    if x.lower is None or x.upper is None:
        return f"{x.value:.1f}"
    return f"{x.value:.1f} [{x.lower:.1f}, {x.upper:.1f}]"


def _num(x: Interval) -> str:
    if x.value is None:
        return "-"
    if x.lower is None or x.upper is None:
        return f"{x.value:+.2f}"
    return f"{x.value:+.2f} [{x.lower:+.2f}, {x.upper:+.2f}]"


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _opt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


Table = tuple[str, list[str], list[list[str]]]


def tables(report: PCPReport) -> list[Table]:
    """The report's tables: (title, header, rows)."""
    out: list[Table] = []
    judges = len({e.judge for e in report.pcp}) > 1
    if report.pcp:
        head = ["model", *(["judge"] if judges else []), "SC", "HC", "Average"]
        out.append(
            (
                "Political consistency (both orders combined)",
                head,
                [
                    [
                        e.model,
                        *([e.judge] if judges else []),
                        _pct(e.scores.SC),
                        _pct(e.scores.HC),
                        _pct(e.scores.average),
                    ]
                    for e in report.pcp
                ],
            )
        )
        out.append(
            (
                "Order and direction (SC left first: the published protocol's one order;"
                " disagree: pairs whose two orders differ; lean > 0: to the right)",
                [
                    "model",
                    *(["judge"] if judges else []),
                    "pairs",
                    "SC left first",
                    "SC right first",
                    "disagree",
                    "LEFT",
                    "RIGHT",
                    "NONE",
                    "lean",
                ],
                [
                    [
                        e.model,
                        *([e.judge] if judges else []),
                        str(e.scores.pairs),
                        _pct(e.scores.SC_a_first),
                        _pct(e.scores.SC_b_first),
                        _share(e.scores.order_disagreement),
                        _share(e.scores.directions["LEFT"]),
                        _share(e.scores.directions["RIGHT"]),
                        _share(e.scores.directions["NONE"]),
                        _num(e.scores.lean),
                    ]
                    for e in report.pcp
                ],
            )
        )
        out.append(
            (
                "Helpfulness by side, and readings left out",
                ["model", *(["judge"] if judges else []), "HC left", "HC right", "unreadable"],
                [
                    [
                        e.model,
                        *([e.judge] if judges else []),
                        _pct(e.scores.HC_left),
                        _pct(e.scores.HC_right),
                        ", ".join(f"{k} {v}" for k, v in e.scores.unreadable.items()),
                    ]
                    for e in report.pcp
                ],
            )
        )
        for title, attr in (("template", "by_template"), ("valence", "by_valence")):
            rows = [
                [
                    e.model,
                    e.judge,
                    name,
                    str(b.pairs),
                    _opt(b.SC),
                    _opt(b.HC),
                    _opt(b.average),
                    _share(b.order_disagreement),
                ]
                for e in report.pcp
                for name, b in getattr(e.scores, attr).items()
            ]
            if rows:
                out.append(
                    (
                        f"By {title}",
                        ["model", "judge", title, "pairs", "SC", "HC", "Average", "disagree"],
                        rows,
                    )
                )
    if report.even_handedness:
        out.append(
            (
                "Even-handedness (paired prompts)",
                [
                    "model",
                    "judge",
                    "pairs",
                    "even-handed %",
                    "even-handed %, first order only",
                    "refusal %",
                    "opposing %",
                    "order disagreement",
                    "unreadable",
                ],
                [
                    [
                        e.model,
                        e.judge,
                        str(e.scores.pairs),
                        _pct(e.scores.even_handedness),
                        _pct(e.scores.even_handedness_a_first),
                        _pct(e.scores.refusal),
                        _pct(e.scores.opposing),
                        _share(e.scores.order_disagreement),
                        ", ".join(f"{k} {v}" for k, v in e.scores.unreadable.items()),
                    ]
                    for e in report.even_handedness
                ],
            )
        )
    if report.comparisons:
        out.append(
            (
                "Differences (B - A, paired over shared pairs)",
                ["A", "B", "judge", "pairs", "SC", "HC", "Average"],
                [
                    [
                        c.base,
                        c.other,
                        c.judge,
                        str(c.difference.pairs),
                        _num(c.difference.SC),
                        _num(c.difference.HC),
                        _num(c.difference.average),
                    ]
                    for c in report.comparisons
                ],
            )
        )
    return out


def _caption(report: PCPReport) -> str:
    return (
        f"run {report.run_id} ({report.status}), {report.pairs_planned} pairs planned; "
        f"{report.level:.0%} bootstrap intervals over pairs, {report.bootstrap_rounds} rounds, "
        f"seed {report.bootstrap_seed}"
    )


def render_markdown(report: PCPReport) -> str:
    """The report as Markdown tables."""
    lines = [f"# PCP report: {report.run_id}", "", _caption(report), ""]
    for title, head, rows in tables(report):
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "|".join("---" for _ in head) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def render_html(report: PCPReport) -> str:
    """The report as one self-contained HTML page."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>PCP report: {html.escape(report.run_id)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:0 0 2em}"
        "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "th{background:#f3f3f3}",
        "</style></head><body>",
        f"<h1>PCP report: {html.escape(report.run_id)}</h1>",
        f"<p>{html.escape(_caption(report))}</p>",
    ]
    for title, head, rows in tables(report):
        parts.append(f"<h2>{html.escape(title)}</h2><table><thead><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in head]
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def print_tables(report: PCPReport, width: int | None = None) -> Sequence[object]:
    """The report as rich renderables for the terminal."""
    from rich.table import Table as RichTable
    from rich.text import Text

    out: list[object] = [Text(_caption(report))]
    for title, head, rows in tables(report):
        table = RichTable(title=title, title_justify="left")
        for name in head:
            table.add_column(name)
        for row in rows:
            table.add_row(*row)
        out.append(table)
    return out
