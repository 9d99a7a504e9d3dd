"""The HTML report's figures: small inline-SVG charts, no plotting library, JavaScript or fetches.

`figures(report)` draws the report's figures from a `RankReport`: ratings with their intervals,
the predicted and observed win-probability heatmaps, online Elo over time and the judges' FOR-side
win rates. The chart functions below it (`interval_chart`, `heatmap`, `line_chart`) each return
one `<svg>` element as a string and know nothing of the report. Colours are fixed per chart (the
report's rendering test looks for them in a headless-Chromium screenshot).

Simplified on purpose: hand-written SVG with fixed sizes and no text measuring (label widths are
estimated from their length). ARCHITECTURE.md prefers matplotlib's SVG output once there are more
chart kinds than these three.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

from eval.report.models import RankReport
from eval.site import model_href

RATING_COLOUR = "#2b6cb0"
JUDGE_COLOUR = "#dd6b20"
GRID_COLOUR = "#d9d9d9"
MISSING_COLOUR = "#eeeeee"
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#aec7e8",
    "#ff9896",
    "#98df8a",
    "#c5b0d5",
    "#ffbb78",
    "#9edae5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
)
_LOW = (215, 48, 39)  # score 0: red
_MID = (247, 247, 247)  # score 0.5
_HIGH = (69, 117, 180)  # score 1: blue
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def heat_colour(value: float | None) -> str:
    """Diverging colour for a score in [0, 1]: red below 0.5, blue above; grey when missing.

    >>> heat_colour(0.5), heat_colour(1.0), heat_colour(None)
    ('#f7f7f7', '#4575b4', '#eeeeee')
    """
    if value is None or not math.isfinite(value):
        return MISSING_COLOUR
    v = min(1.0, max(0.0, value))
    end, t = (_HIGH, (v - 0.5) * 2) if v >= 0.5 else (_LOW, (0.5 - v) * 2)
    rgb = (round(m + (e - m) * t) for m, e in zip(_MID, end, strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def interval_chart(
    labels: Sequence[str],
    values: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    *,
    colour: str = RATING_COLOUR,
    reference: float | None = None,
    fmt: str = "{:.0f}",
    title: str = "",
) -> str:
    """Horizontal dot-and-whisker chart: one row per label, the interval as a bar."""
    row, left, right, top = 26, 170, 40, 28
    width = 720
    height = top + row * len(labels) + 30
    finite = [x for x in (*lower, *upper, *values) if math.isfinite(x)]
    if reference is not None:
        finite.append(reference)
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [f'<text x="{left}" y="16" font-weight="600">{escape(title)}</text>']
    for t in _nice_ticks(lo, hi):
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 6}" y2="{height - 24}" '
            f'stroke="{GRID_COLOUR}"/>'
            f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="middle" fill="#555">'
            f"{fmt.format(t)}</text>"
        )
    if reference is not None:
        parts.append(
            f'<line x1="{x(reference):.1f}" x2="{x(reference):.1f}" y1="{top - 6}" '
            f'y2="{height - 24}" stroke="#444" stroke-dasharray="4 3"/>'
        )
    for i, (label, v, lo_i, hi_i) in enumerate(zip(labels, values, lower, upper, strict=True)):
        y = top + row * i + row / 2
        parts.append(
            f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
        if math.isfinite(lo_i) and math.isfinite(hi_i):
            parts.append(
                f'<rect x="{x(lo_i):.1f}" y="{y - 4:.1f}" width="{max(x(hi_i) - x(lo_i), 2):.1f}"'
                f' height="8" rx="3" fill="{colour}" fill-opacity="0.35"/>'
            )
        if math.isfinite(v):
            parts.append(
                f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="6" fill="{colour}"><title>'
                f"{escape(label)}: {fmt.format(v)} ({fmt.format(lo_i)} to {fmt.format(hi_i)})"
                "</title></circle>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">{"".join(parts)}</svg>'
    )


def heatmap(
    labels: Sequence[str],
    matrix: Sequence[Sequence[float | None]],
    title: str,
    link: Callable[[str, str], str] | None = None,
) -> str:
    """Square matrix of scores in [0, 1], row model against column model, values printed;
    `link(row, column)`: where a cell leads (`arena rank --site`), if anywhere."""
    n = len(labels)
    cell = max(30, min(56, 480 // max(n, 1)))
    longest = max((len(x) for x in labels), default=1)
    left, top = max(60, 7 * longest + 16), 34 + round(5.5 * longest) + 12
    width = left + cell * n + 20
    height = top + cell * n + 20
    parts = [f'<text x="10" y="18" font-weight="600">{escape(title)}</text>']
    for j, label in enumerate(labels):
        cx = left + cell * j + cell / 2
        parts.append(
            f'<text x="{cx:.1f}" y="{top - 8}" transform="rotate(-50 {cx:.1f} {top - 8})">'
            f"{escape(label)}</text>"
        )
    for i, label in enumerate(labels):
        y = top + cell * i
        parts.append(
            f'<text x="{left - 8}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        for j in range(n):
            v = matrix[i][j]
            fill = heat_colour(v)
            text = "" if v is None else f"{v:.2f}"
            dark = v is not None and abs(v - 0.5) > 0.3
            rect = (
                f'<rect x="{left + cell * j}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{fill}" stroke="#fff"><title>{escape(label)} vs '
                f"{escape(labels[j])}: {text or 'never met'}</title></rect>"
            )
            if link is not None and v is not None:
                rect = f'<a href="{escape(link(label, labels[j]))}">{rect}</a>'
            parts.append(rect)
            if text:
                parts.append(
                    f'<text x="{left + cell * j + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle" font-size="10" fill="{"#fff" if dark else "#222"}">'
                    f"{text}</text>"
                )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">{"".join(parts)}</svg>'
    )


def line_chart(
    x: Sequence[int], series: Mapping[str, Sequence[float | None]], title: str, x_label: str
) -> str:
    """One line per series over a shared x axis, with a legend."""
    width, left, right, top, bottom = 720, 56, 160, 28, 40
    height = max(320, top + 16 * len(series) + bottom)  # room for the legend
    values = [v for s in series.values() for v in s if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or (10.0 if abs(hi) >= 10 else 0.5)  # a flat line: some room
    lo, hi = lo - pad, hi + pad
    x0, x1 = (min(x), max(x)) if x else (0, 1)
    span = max(x1 - x0, 1)

    def px(v: float) -> float:
        return left + (v - x0) / span * (width - left - right)

    def py(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    parts = [f'<text x="{left}" y="16" font-weight="600">{escape(title)}</text>']
    ticks = _nice_ticks(lo, hi)
    step = min((b - a for a, b in itertools.pairwise(ticks)), default=1.0)
    digits = 0 if step >= 1 else min(4, math.ceil(-math.log10(step)))
    for t in ticks:
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
            f'stroke="{GRID_COLOUR}"/><text x="{left - 6}" y="{py(t) + 4:.1f}" '
            f'text-anchor="end" fill="#555">{t:.{digits}f}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 8}" text-anchor="middle" '
        f'fill="#555">{escape(x_label)} ({x0} to {x1})</text>'
    )
    for k, (name, ys) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        drawn = [(px(xi), py(yi)) for xi, yi in zip(x, ys, strict=True) if yi is not None]
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in drawn)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        if len(drawn) == 1:  # one point draws no line: a dot
            a, b = drawn[0]
            parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>')
        ly = top + 16 * k + 6
        parts.append(
            f'<rect x="{width - right + 12}" y="{ly - 8}" width="12" height="12" '
            f'fill="{colour}"/><text x="{width - right + 30}" y="{ly + 2}">{escape(name)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">{"".join(parts)}</svg>'
    )


def _value(x: float | None) -> float:
    """A report number for `interval_chart`, which leaves out what is not finite."""
    return math.nan if x is None else x


def figures(report: RankReport, site: str | None = None) -> dict[str, str]:
    """The report's SVG figures by name: ratings, predicted, observed, timeline and (when a
    judge has a FOR-side win rate) judges. With `site` (the address of an `arena view` site),
    each heatmap cell links to the row model's page, at its debates against the column model."""
    models = report.models
    link = None if site is None else (lambda a, b: site + model_href(a, b))
    out = {
        "ratings": interval_chart(
            [m.model for m in models],
            [_value(m.rating) for m in models],
            [_value(m.lower) for m in models],
            [_value(m.upper) for m in models],
            title=f"Rating ({report.method}) with 95% bootstrap interval",
        ),
        "predicted": heatmap(
            report.matrices.models,
            report.matrices.predicted,
            "Predicted score, row vs column",
            link,
        ),
        "observed": heatmap(
            report.matrices.models,
            report.matrices.observed,
            "Observed score, row vs column",
            link,
        ),
        "timeline": line_chart(
            report.elo_over_time.battle,
            report.elo_over_time.ratings,
            f"Online Elo (K = {report.elo_over_time.k:g}) in debate order",
            "battle",
        ),
    }
    judged = [j for j in report.judges.per_judge if j.for_rate is not None]
    if judged:
        out["judges"] = interval_chart(
            [j.judge for j in judged],
            [_value(j.for_rate) for j in judged],
            [_value(j.for_lower) for j in judged],
            [_value(j.for_upper) for j in judged],
            colour=JUDGE_COLOUR,
            reference=0.5,
            fmt="{:.2f}",
            title="FOR-side win rate per judge (decisive verdicts, exact 95% CI)",
        )
    return out
