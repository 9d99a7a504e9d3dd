"""`arena bbq score`'s and `arena bbq report`'s outputs, all rendered from one `BBQReport`
(`eval.bbq.build_report`, or `eval.bbq_store.build_store_report` from a run): JSON, a rich
terminal table, Markdown, and (for a run) a self-contained HTML page with one figure.

The tables show, per model, one row per category and one for all items: the two accuracies, the
abstention rate on disambiguated items, s_DIS, and s_AMB beside its two factors,
(1 - acc_ambig) and amb_commit_bias, so that a small s_AMB reads either as "rarely commits" or as
"commits without a lean". Numbers are shown with 3 decimals (the JSON keeps them whole); bias
scores and differences are signed; "n/a" is an undefined value.

A report read from a run says first which items it covers (`source_line`: the run, the split,
its seed and fraction, the per-category limit, items answered of those selected).

The HTML page (`html`, template `eval/templates/bbq.html.j2`) has the same tables and one inline
SVG figure (`commit_lean_figure`): per model, how often it commits to a person on ambiguous items
(1 - acc_ambig, x) against which way it leans when it does (amb_commit_bias, y), with both 95%
intervals as bars. s_AMB is their product, so models on one hyperbola x * y = c share an s_AMB;
the figure shows which factor makes a model's score.

Simplified on purpose: JSON is `json.dumps` of `BBQReport.model_dump` (indent 1), like
`arena rank`'s; the figure is hand-written SVG like the rank report's (no plotting library is a
dependency), with model names beside their points and no collision avoidance.
"""

from __future__ import annotations

import functools
import json
import math
from html import escape

import jinja2
from markupsafe import Markup
from rich import box
from rich.console import Console
from rich.table import Table

from eval.bbq import BBQReport, Comparison, Difference, Interval, ModelScores, Scores
from eval.report.figures import FONT, GRID_COLOUR, PALETTE

SCORE_COLUMNS = (
    "category",
    "items",
    "acc_ambig",
    "acc_disambig",
    "abstain_disambig",
    "s_DIS",
    "s_AMB",
    "= 1 - acc_ambig",
    "x amb_commit_bias",
    "parse failures",
)
DIFF_COLUMNS = (
    "category",
    "items",
    "acc_ambig",
    "acc_disambig",
    "abstain_disambig",
    "s_DIS",
    "s_AMB",
    "amb_commit_bias",
    "parse_failure_rate",
)


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _cell(interval: Interval, signed: bool = False, sep: str = " ") -> str:
    """`value (lower to upper)` (Markdown), or the value over `[lower, upper]` with 2 decimals
    (the terminal, `sep` a newline); the value alone without an interval."""
    value = _num(interval.value, signed)
    if interval.lower is None or interval.upper is None:
        return value
    if sep == "\n":
        lo, hi = (f"{x:+.2f}" if signed else f"{x:.2f}" for x in (interval.lower, interval.upper))
        return f"{value}\n[{lo}, {hi}]"
    return f"{value}{sep}({_num(interval.lower, signed)} to {_num(interval.upper, signed)})"


def _score_row(s: Scores, sep: str) -> list[str]:
    one_minus = None if s.acc_ambig.value is None else 1.0 - s.acc_ambig.value
    return [
        s.category,
        str(s.items),
        _cell(s.acc_ambig, sep=sep),
        _cell(s.acc_disambig, sep=sep),
        _cell(s.abstain_disambig, sep=sep),
        _cell(s.s_DIS, signed=True, sep=sep),
        _cell(s.s_AMB, signed=True, sep=sep),
        _num(one_minus),
        _cell(s.amb_commit_bias, signed=True, sep=sep),
        str(s.parse_failures),
    ]


def _diff_row(d: Difference, sep: str) -> list[str]:
    return [
        d.category,
        str(d.items),
        *(
            _cell(getattr(d, m), signed=True, sep=sep)
            for m in (
                "acc_ambig",
                "acc_disambig",
                "abstain_disambig",
                "s_DIS",
                "s_AMB",
                "amb_commit_bias",
                "parse_failure_rate",
            )
        ),
    ]


def _rows(model: ModelScores, sep: str) -> list[list[str]]:
    return [_score_row(s, sep) for s in [*model.categories, model.overall]]


def _diff_rows(comparison: Comparison, sep: str) -> list[list[str]]:
    return [_diff_row(d, sep) for d in [*comparison.categories, comparison.overall]]


def _notes(model: ModelScores) -> list[str]:
    notes = []
    if model.overall.no_target:
        notes.append(
            f"{model.overall.no_target} items have no single stereotyped option and are left "
            "out of the bias scores (they count for accuracy)."
        )
    if model.overall.parse_failures:
        notes.append(
            f"{model.overall.parse_failures} predictions name no option: wrong for accuracy, "
            "left out of the bias scores."
        )
    return notes


def _settings(report: BBQReport) -> str:
    b = report.bootstrap
    if b.rounds == 0:
        return "No bootstrap intervals (--bootstrap 0)."
    return (
        f"Intervals: {b.level:.0%} percentile bootstrap, {b.rounds} rounds, seed {b.seed}, "
        f"resampling items within each category."
    )


def source_line(report: BBQReport) -> str | None:
    """Which items a report read from a run covers; None for a report of predictions."""
    src = report.source
    if src is None:
        return None
    if src.split == "all":
        split = "all items"
    else:
        split = (
            f"the {src.split} split (template-disjoint, dev fraction {src.dev_fraction:g}, "
            f"seed {src.split_seed})"
        )
    limit = f", at most {src.limit} per category" if src.limit is not None else ""
    samples = f"; {src.samples} samples per item, so counts are answers" if src.samples > 1 else ""
    shuffled = "; options shuffled per item" if src.shuffle_options else ""
    return (
        f"Run {src.run_id} ({src.status}): {split}{limit}; {src.items_answered} of "
        f"{src.items_planned} items answered{samples}{shuffled}."
    )


def json_text(report: BBQReport) -> str:
    """The report as JSON (no trailing newline)."""
    return json.dumps(report.model_dump(mode="json"), indent=1)


def _table(columns: tuple[str, ...], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column(columns[0], no_wrap=True)
    for name in columns[1:]:
        table.add_column(name, justify="right")
    return table


def terminal(report: BBQReport, console: Console) -> None:
    """One rich table per model, then one per comparison."""
    line = source_line(report)
    if line:
        console.print(line, highlight=False)
    for model in report.models:
        table = _table(SCORE_COLUMNS, f"BBQ: {model.model}")
        for row in _rows(model, sep="\n"):
            table.add_row(*row)
        console.print(table)
        for note in _notes(model):
            console.print(note, highlight=False)
    for comparison in report.comparisons:
        table = _table(DIFF_COLUMNS, f"{comparison.b} minus {comparison.a} (paired)")
        for row in _diff_rows(comparison, sep="\n"):
            table.add_row(*row)
        console.print(table)
    console.print(_settings(report), highlight=False)


def _md_table(header: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(report: BBQReport) -> str:
    """The report as GitHub-flavoured Markdown."""
    out: list[str] = ["# BBQ scores", ""]
    line = source_line(report)
    if line:
        out += [line, ""]
    for model in report.models:
        out += [f"## {model.model}", "", _md_table(SCORE_COLUMNS, _rows(model, sep=" ")), ""]
        for note in _notes(model):
            out += [note, ""]
    for comparison in report.comparisons:
        out += [
            f"## {comparison.b} minus {comparison.a} (paired)",
            "",
            _md_table(DIFF_COLUMNS, _diff_rows(comparison, sep=" ")),
            "",
        ]
    out += [_settings(report), ""]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML


def _axis_ticks(lo: float, hi: float, step: float) -> list[float]:
    count = round((hi - lo) / step)
    return [lo + i * step for i in range(count + 1)]


def commit_lean_figure(report: BBQReport) -> str:
    """One `<svg>`: per model (all items), 1 - acc_ambig (x, in [0, 1]) against
    amb_commit_bias (y, in [-1, 1]), each with its 95% interval as a bar; a dashed line at no
    lean. A model without a defined value is left out (and named below the axes)."""
    width, height, left, right, top, bottom = 640, 420, 64, 170, 30, 56
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + min(max(v, 0.0), 1.0) * plot_w

    def py(v: float) -> float:
        return top + (1.0 - min(max(v, -1.0), 1.0)) / 2.0 * plot_h

    parts = [
        f'<text x="{left}" y="18" font-weight="600">'
        "Ambiguous items: how often a model commits, and which way it leans</text>"
    ]
    for t in _axis_ticks(0.0, 1.0, 0.2):
        parts.append(
            f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{GRID_COLOUR}"/><text x="{px(t):.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="middle" fill="#555">{t:.1f}</text>'
        )
    for t in _axis_ticks(-1.0, 1.0, 0.5):
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
            f'stroke="{GRID_COLOUR}"/><text x="{left - 8}" y="{py(t) + 4:.1f}" '
            f'text-anchor="end" fill="#555">{t:+.1f}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{py(0):.1f}" y2="{py(0):.1f}" '
        'stroke="#444" stroke-dasharray="4 3"/>'
    )
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 18}" text-anchor="middle" fill="#333">'
        "commits to a person: 1 - acc_ambig</text>"
        f'<text x="16" y="{top + plot_h / 2:.0f}" text-anchor="middle" fill="#333" '
        f'transform="rotate(-90 16 {top + plot_h / 2:.0f})">lean when committing: '
        "amb_commit_bias</text>"
    )
    missing: list[str] = []
    for k, model in enumerate(report.models):
        acc, lean = model.overall.acc_ambig, model.overall.amb_commit_bias
        if acc.value is None or lean.value is None:
            missing.append(model.model)
            continue
        colour = PALETTE[k % len(PALETTE)]
        x, y = 1.0 - acc.value, lean.value
        if acc.lower is not None and acc.upper is not None:
            parts.append(
                f'<line x1="{px(1 - acc.upper):.1f}" x2="{px(1 - acc.lower):.1f}" '
                f'y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="{colour}" stroke-width="2"/>'
            )
        if lean.lower is not None and lean.upper is not None:
            parts.append(
                f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{py(lean.lower):.1f}" '
                f'y2="{py(lean.upper):.1f}" stroke="{colour}" stroke-width="2"/>'
            )
        s_amb = model.overall.s_AMB.value
        tip = f"{model.model}: 1 - acc_ambig {x:.3f}, amb_commit_bias {y:+.3f}"
        tip += f", s_AMB {s_amb:+.3f}" if s_amb is not None else ""
        parts.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="6" fill="{colour}">'
            f"<title>{escape(tip)}</title></circle>"
        )
        ly = top + 18 * k + 6
        parts.append(
            f'<rect x="{width - right + 16}" y="{ly - 9}" width="12" height="12" '
            f'fill="{colour}"/><text x="{width - right + 34}" y="{ly + 2}">'
            f"{escape(model.model)}</text>"
        )
    if missing:
        parts.append(
            f'<text x="{left}" y="{height - 2}" fill="#555">not shown (nothing to divide): '
            f"{escape(', '.join(missing))}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">{"".join(parts)}</svg>'
    )


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("eval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def html(report: BBQReport) -> str:
    """A self-contained HTML page: the tables and the figure, no scripts or external files."""
    return (
        _environment()
        .get_template("bbq.html.j2")
        .render(
            report=report,
            source=source_line(report),
            settings=_settings(report),
            figure=Markup(commit_lean_figure(report)),
            score_columns=SCORE_COLUMNS,
            diff_columns=DIFF_COLUMNS,
            score_rows=lambda m: _rows(m, sep=" "),
            diff_rows=lambda c: _diff_rows(c, sep=" "),
            notes=_notes,
        )
    )
