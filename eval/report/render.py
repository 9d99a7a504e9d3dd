"""`arena rank`'s four outputs, all rendered from one `RankReport` (`eval.report.build_report`):
JSON, a rich terminal table, Markdown, and a self-contained HTML page with inline SVG figures.

Numbers are formatted here (`_num`: "n/a" for a null) from the values the report already rounded,
so every output shows the same digits. The HTML page is a Jinja template
(`eval/templates/report.html.j2`) fed the typed report; its figures come from
`eval.report.figures`.

A `Comparison` (`arena rank --compare A B`) has three outputs of its own: JSON, a terminal table
and Markdown (`comparison_json`, `comparison_terminal`, `comparison_markdown`).

Simplified on purpose: JSON is `json.dumps` of `RankReport.model_dump` (indent 1, ASCII), not
pydantic's own JSON writer, so floats keep Python's shortest repr (`1e-05`, `0.95`) and the
bytes stay those of schema version 2.
"""

from __future__ import annotations

import functools
import json
import math

import jinja2
from markupsafe import Markup
from rich.console import Console
from rich.table import Table

from eval.report.figures import figures
from eval.report.models import Comparison, ModelRating, RankReport
from eval.site import model_href


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = fmt.format(value)
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return fmt.format(0.0)  # -0.3 is "+0" or "0", not "-0"
    return text


def _ci(row: ModelRating, fmt: str = "{:.0f}") -> str:
    return f"{_num(row.lower, fmt)} to {_num(row.upper, fmt)}"


def json_text(report: RankReport) -> str:
    """The report as the JSON document of docs/rank.md (no trailing newline)."""
    return json.dumps(report.model_dump(mode="json"), indent=1)


MAIN_COLUMNS = ("rank", "model", "rating", "95% CI", "debates", "win rate")


def _rating_row(m: ModelRating) -> list[str]:
    """One leaderboard row's cells, as text (`MAIN_COLUMNS`)."""
    return [
        str(m.rank),
        m.model,
        _num(m.rating),
        _ci(m),
        str(m.debates),
        _num(m.win_rate, "{:.3f}"),
    ]


def _main_rows(report: RankReport) -> list[list[str]]:
    """The main table's cells, as text (`MAIN_COLUMNS`)."""
    return [_rating_row(m) for m in report.models]


def _side_line(report: RankReport) -> str:
    side = report.side_advantage
    who = "majority verdicts" if report.judge == "majority" else f"judge {report.judge}"
    head = f"{report.battles} battles ({who}), {report.method}"
    if side is None:
        return head + "; Elo ignores the FOR-side advantage"
    return (
        f"{head}; FOR-side advantage {_num(side.for_advantage, '{:+.0f}')} Elo "
        f"(95% CI {_num(side.lower, '{:+.0f}')} to {_num(side.upper, '{:+.0f}')})"
    )


def _cycles_line(report: RankReport) -> str:
    found = report.graph.cycles
    if not found:
        return "No intransitive cycles in the majority-win graph."
    shown = "; ".join(
        " > ".join([*c.models, c.models[0]]) + f" ({', '.join(str(d) for d in c.debates)} debates)"
        for c in found[:5]
    )
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"Intransitive cycles: {shown}{more}."


def _by_judge(report: RankReport) -> dict[str, dict[str, ModelRating]]:
    """Judge -> model -> that model's row in the judge's own table."""
    return {j: {m.model: m for m in t.models} for j, t in report.per_judge.items()}


def terminal(report: RankReport, console: Console) -> None:
    """The rich table, per-judge ratings and a judge-quality summary."""
    table = Table(*MAIN_COLUMNS, title="Leaderboard")
    for row in _main_rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(_side_line(report), highlight=False)
    if len(report.per_judge) > 1 or (report.per_judge and report.judge not in report.per_judge):
        judges = list(report.per_judge)
        per = Table("model", "main", *judges, title="Ratings per judge")
        by_judge = _by_judge(report)
        for m in report.models:
            cells = []
            for j in judges:
                r = by_judge[j].get(m.model)
                cells.append(_num(r.rating if r else None))
            per.add_row(m.model, _num(m.rating), *cells)
        console.print(per)
    quality = report.judges
    if quality.per_judge:
        jt = Table(
            "judge", "verdicts", "invalid", "FOR win rate (95% CI)", "verbosity r", title="Judges"
        )
        for q in quality.per_judge:
            flag = " biased" if q.side_biased else ""
            jt.add_row(
                q.judge,
                str(q.verdicts),
                _num(q.invalid_rate, "{:.1%}"),
                f"{_num(q.for_rate, '{:.3f}')} ({_num(q.for_lower, '{:.3f}')} to "
                f"{_num(q.for_upper, '{:.3f}')}){flag}",
                _num(q.verbosity_r, "{:+.3f}"),
            )
        console.print(jt)
        agreement = quality.agreement
        if agreement.statistic:
            name = "Cohen's" if agreement.statistic == "cohen" else "Fleiss'"
            console.print(
                f"Judge agreement: {name} kappa {_num(agreement.kappa, '{:.3f}')} over "
                f"{agreement.debates} debates",
                highlight=False,
            )
        for s in quality.swap:
            console.print(
                f"Swap consistency of {s.judge}: {_num(s.agreement, '{:.1%}')} of "
                f"{s.n} debates, kappa {_num(s.kappa, '{:.3f}')}",
                highlight=False,
            )
    console.print(_cycles_line(report), highlight=False)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(report: RankReport) -> str:
    """The report as GitHub-flavoured Markdown."""
    out = [
        "# Leaderboard",
        "",
        _md_table(list(MAIN_COLUMNS), _main_rows(report)),
        "",
        _side_line(report) + ".",
        "",
    ]
    if report.per_judge:
        judges = list(report.per_judge)
        by_judge = _by_judge(report)
        rows = []
        for m in report.models:
            cells = []
            for j in judges:
                r = by_judge[j].get(m.model)
                cells.append(f"{_num(r.rating)} ({_ci(r)})" if r else "n/a")
            rows.append([m.model, f"{_num(m.rating)} ({_ci(m)})", *cells])
        out += ["## Ratings per judge", "", _md_table(["model", "main", *judges], rows), ""]
    quality = report.judges
    if quality.per_judge:
        out += [
            "## Judges",
            "",
            _md_table(
                [
                    "judge",
                    "verdicts",
                    "invalid",
                    "ties",
                    "FOR win rate",
                    "95% CI",
                    "verbosity r",
                    "longer side won",
                ],
                [
                    [
                        q.judge,
                        str(q.verdicts),
                        _num(q.invalid_rate, "{:.1%}"),
                        str(q.ties),
                        _num(q.for_rate, "{:.3f}") + (" (biased)" if q.side_biased else ""),
                        f"{_num(q.for_lower, '{:.3f}')} to {_num(q.for_upper, '{:.3f}')}",
                        _num(q.verbosity_r, "{:+.3f}"),
                        _num(q.longer_side_won, "{:.3f}"),
                    ]
                    for q in quality.per_judge
                ],
            ),
            "",
        ]
        agreement = quality.agreement
        if agreement.pairwise:
            out += [
                _md_table(
                    ["judge", "judge", "Cohen's kappa", "debates"],
                    [[p.a, p.b, _num(p.kappa, "{:.3f}"), str(p.n)] for p in agreement.pairwise],
                ),
                "",
            ]
            if agreement.statistic == "fleiss":
                out += [
                    f"Fleiss' kappa over all judges: {_num(agreement.kappa, '{:.3f}')} "
                    f"({agreement.debates} debates).",
                    "",
                ]
        if quality.swap:
            out += [
                _md_table(
                    ["judge", "same verdict when labels swapped", "kappa", "debates"],
                    [
                        [
                            s.judge,
                            _num(s.agreement, "{:.1%}"),
                            _num(s.kappa, "{:.3f}"),
                            str(s.n),
                        ]
                        for s in quality.swap
                    ],
                ),
                "",
            ]
    out += ["## Majority-win graph", "", _cycles_line(report), ""]
    return "\n".join(out)


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("eval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def html(report: RankReport, site: str | None = None) -> str:
    """A self-contained HTML page: tables, inline SVG figures, no scripts or external files.
    With `site` (the address of an `arena view` site, ending in '/'), leaderboard rows and
    heatmap cells link to its model pages."""
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            site=site,
            model_href=model_href,
            figures={k: Markup(v) for k, v in figures(report, site).items()},
            side_line=_side_line(report),
            cycles_line=_cycles_line(report),
            num=_num,
            ci=_ci,
        )
    )


def _comparison_head(c: Comparison) -> list[str]:
    """The two leaderboard rows, B - A and what it rests on, as lines of text."""
    who = "majority verdicts" if c.judge == "majority" else f"judge {c.judge}"
    return [
        f"{c.second} - {c.first}: {_num(c.difference, '{:+.0f}')} Elo "
        f"(95% CI {_num(c.lower, '{:+.0f}')} to {_num(c.upper, '{:+.0f}')}, paired bootstrap); "
        f"{c.second} rated above {c.first} in {_num(c.b_above, '{:.1%}')} of "
        f"{c.bootstrap.rounds} rounds",
        f"{c.battles} battles among the rated models ({who}), {c.method}",
    ]


COMPARISON_COLUMNS = ("sides", "debates", "{first} won", "{second} won", "ties")


def _comparison_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """The head-to-head table's header and rows, as text."""
    header = [h.format(first=c.first, second=c.second) for h in COMPARISON_COLUMNS]
    h2h = c.head_to_head
    rows = [
        [label, str(s.battles), str(s.first_wins), str(s.second_wins), str(s.ties)]
        for label, s in (
            (f"{c.first} FOR, {c.second} AGAINST", h2h.first_for),
            (f"{c.second} FOR, {c.first} AGAINST", h2h.second_for),
            ("both", h2h.total),
        )
    ]
    return header, rows


def comparison_json(c: Comparison) -> str:
    """The comparison as a JSON document (no trailing newline)."""
    return json.dumps(c.model_dump(mode="json"), indent=1)


def comparison_terminal(c: Comparison, console: Console) -> None:
    """The two leaderboard rows, B - A with its interval, and the head-to-head table."""
    table = Table(*MAIN_COLUMNS, title=f"{c.second} vs {c.first}")
    for m in c.ratings:
        table.add_row(*_rating_row(m))
    console.print(table)
    for line in _comparison_head(c):
        console.print(line, highlight=False)
    header, rows = _comparison_rows(c)
    h2h = Table(*header, title="Head to head")
    for row in rows:
        h2h.add_row(*row)
    console.print(h2h)


def comparison_markdown(c: Comparison) -> str:
    """The comparison as GitHub-flavoured Markdown."""
    header, rows = _comparison_rows(c)
    head = _comparison_head(c)
    return "\n".join(
        [
            f"# {c.second} vs {c.first}",
            "",
            _md_table(list(MAIN_COLUMNS), [_rating_row(m) for m in c.ratings]),
            "",
            head[0] + ".",
            "",
            head[1] + ".",
            "",
            "## Head to head",
            "",
            _md_table(header, rows),
            "",
        ]
    )
