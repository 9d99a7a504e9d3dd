"""How a training run went, from the database: `arena train report`.

`training_report(db, run)` reads one run of `training_runs` (the file's only one, or `--run`) and
its `training_metrics`, and gives a `TrainingReport`: the run's row, each metric's values by step,
and the benchmark's metrics during training (`eval_bbq/...`, `eval_pcp/...`, DPO's
`eval_perplexity`) pivoted by step, so that how fast acc_ambig or SC moves is one table and one
figure. It reads a consistent snapshot, so it works while the run trains.

Renderings: `render_text` (the terminal: the run, the benchmark by step, the last value of the
training figures), `render_markdown`, `render_json` (every metric by step), and `render_html`, a
self-contained page with inline-SVG line charts (`eval.report.figures.line_chart`): the
benchmark, the reward (GRPO: the mean reward and each reward function's), the loss and KL, and
the step's time split (GRPO).

Simplified on purpose: one run per report; a metric logged at some steps only is drawn through
the steps it has.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, Final

from eval.bbq import METRICS as BBQ_METRICS
from eval.pcp import HEADLINE as PCP_METRICS
from eval.runs import choose_run

RUN_COLUMNS: Final = (
    "run_id",
    "kind",
    "base",
    "status",
    "stop_reason",
    "steps",
    "adapter_step",
    "output_dir",
    "created_at",
    "finished_at",
    "config",
)
BENCHMARK_PREFIXES: Final = ("eval_bbq/", "eval_pcp/")
ORDER: Final = (*BBQ_METRICS, *PCP_METRICS)
"""The benchmark's metrics in the order a table shows them (BBQ's, then PCP's)."""
CHARTS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("Reward: the mean, and each reward function's", ("reward",)),
    ("Loss", ("loss",)),
    ("KL to the reference", ("kl",)),
    ("Seconds per step", ("time/step", "time/generation", "time/reward", "time/optimisation")),
)
"""The figures besides the benchmark's (DPO's safety-stop perplexity is drawn as one), and the
metrics each draws (the reward figure also
draws every `rewards/<function>/mean`)."""
TRAINING_FIGURES: Final = (
    "loss",
    "reward",
    "reward_std",
    "kl",
    "frac_reward_zero_std",
    "rewards/margins",
    "rewards/accuracies",
    "learning_rate",
    "time/step",
)
"""The training metrics whose last value the text and Markdown renderings show, when logged."""


@dataclass
class TrainingReport:
    """One training run and its metrics."""

    db: str
    run: dict[str, Any]
    metrics: dict[str, dict[int, float]] = field(default_factory=dict)
    """name -> step -> value."""

    @property
    def benchmark(self) -> list[str]:
        """The benchmark's metrics (during training): the task's headline metrics first."""
        found = [
            n for n in self.metrics if n.startswith(BENCHMARK_PREFIXES) or n == "eval_perplexity"
        ]

        def rank(name: str) -> tuple[int, str]:
            short = name.split("/", 1)[-1]
            return (ORDER.index(short) if short in ORDER else len(ORDER), name)

        return sorted(found, key=rank)

    def benchmark_steps(self) -> list[int]:
        return sorted({s for n in self.benchmark for s in self.metrics[n]})

    def last(self, name: str) -> tuple[int, float] | None:
        values = self.metrics.get(name)
        if not values:
            return None
        step = max(values)
        return step, values[step]


def training_report(db: str | os.PathLike[str], run_id: str | None = None) -> TrainingReport:
    """The report of run `run_id` (None: the file's only training run); UserError otherwise."""
    from storage.sql import read_connection

    with read_connection(db, tables=("training_runs", "training_metrics")) as con:
        rows = con.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM training_runs ORDER BY created_at"
        ).fetchall()
        row = choose_run(db, rows, run_id, "training", "arena train")
        metrics: dict[str, dict[int, float]] = {}
        for step, name, value in con.execute(
            "SELECT step, name, value FROM training_metrics WHERE run_id = ? ORDER BY step",
            [row[0]],
        ).fetchall():
            metrics.setdefault(str(name), {})[int(step)] = float(value)
    run = dict(zip(RUN_COLUMNS, row, strict=True))
    run["config"] = json.loads(run["config"]) if run["config"] else {}
    return TrainingReport(str(db), run, metrics)


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


def benchmark_rows(report: TrainingReport) -> tuple[list[str], list[list[str]]]:
    """The benchmark by step: a header (step, then each metric without its prefix) and rows."""
    names = report.benchmark
    header = ["step", *(n.split("/", 1)[-1] for n in names)]
    rows = [
        [str(step), *(_number(report.metrics[n].get(step)) for n in names)]
        for step in report.benchmark_steps()
    ]
    return header, rows


def _summary(report: TrainingReport) -> list[tuple[str, str]]:
    run = report.run
    lines = [
        ("run", f"{run['run_id']} ({run['kind']}, {run['status']})"),
        ("base", str(run["base"])),
        ("steps", f"{run['steps'] if run['steps'] is not None else '-'}"),
        ("adapter", f"{run['output_dir']} (step {run['adapter_step']})"),
    ]
    if run.get("stop_reason"):
        lines.append(("stopped", str(run["stop_reason"])))
    for name in TRAINING_FIGURES:
        found = report.last(name)
        if found is not None:
            lines.append((name, f"{_number(found[1])} at step {found[0]}"))
    return lines


def render_markdown(report: TrainingReport) -> str:
    """The run, its last training figures, and the benchmark by step, as Markdown."""
    out = [f"# Training run {report.run['run_id']}", ""]
    out += [f"- **{k}**: {v}" for k, v in _summary(report)]
    header, rows = benchmark_rows(report)
    if rows:
        out += ["", "## The benchmark during training", ""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def render_json(report: TrainingReport) -> str:
    """The run's row and every metric by step, as JSON (non-finite values as null)."""
    metrics = {
        name: {str(step): (v if math.isfinite(v) else None) for step, v in values.items()}
        for name, values in report.metrics.items()
    }
    return json.dumps({"run": report.run, "metrics": metrics}, indent=2, default=str) + "\n"


def render_text(report: TrainingReport, console: Any) -> None:
    """The run and the benchmark by step, on a rich console."""
    from rich.table import Table

    for key, value in _summary(report):
        console.print(f"[bold]{key}[/bold]: {value}", soft_wrap=True)
    header, rows = benchmark_rows(report)
    if rows:
        table = Table(title="the benchmark during training")
        for name in header:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        console.print("no benchmark during training (arena train grpo --eval-every N records one)")


def _label(name: str) -> str:
    """A series' name in a legend: `eval_bbq/acc_ambig` as `acc_ambig`, `rewards/f/mean` as `f`,
    `time/reward` as `reward`."""
    if name.startswith("rewards/") and name.endswith("/mean"):
        return name.removeprefix("rewards/").removesuffix("/mean")
    return name.split("/", 1)[-1]


def _series(
    report: TrainingReport, names: Sequence[str]
) -> tuple[list[int], dict[str, list[float | None]]]:
    present = [n for n in names if report.metrics.get(n)]
    steps = sorted({s for n in present for s in report.metrics[n]})
    series = {_label(n): [report.metrics[n].get(s) for s in steps] for n in present}
    return steps, series


def figures(report: TrainingReport) -> list[str]:
    """The report's charts as inline SVG, the benchmark's first."""
    from eval.report.figures import line_chart

    charts: list[str] = []
    groups: dict[str, list[str]] = {}
    for name in report.benchmark:
        prefix = name.split("/", 1)[0]
        short = name.split("/")[-1]
        unit = {"SC": "percent", "HC": "percent", "average": "percent", "lean": "lean"}.get(
            short, "share"
        )
        groups.setdefault(f"{prefix} {unit}", []).append(name)
    for title, names in sorted(groups.items()):
        steps, series = _series(report, names)
        if steps:
            label = (
                title.replace("eval_", "benchmark: ")
                .replace(" share", "")
                .replace(" percent", " (%)")
                .replace(" lean", ": lean (< 0 left, > 0 right)")
            )
            charts.append(line_chart(steps, series, label, "step"))
    rewards = sorted(n for n in report.metrics if n.startswith("rewards/") and n.endswith("/mean"))
    for title, drawn in CHARTS:
        extra = rewards if drawn == ("reward",) else []  # under their functions' names
        steps, series = _series(report, [*drawn, *extra])
        if steps:
            charts.append(line_chart(steps, series, title, "step"))
    return charts


def render_html(report: TrainingReport) -> str:
    """A self-contained page: the run, the benchmark by step, and the charts."""
    summary = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in _summary(report)
    )
    header, rows = benchmark_rows(report)
    table = ""
    if rows:
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        table = (
            "<h2>The benchmark during training</h2>"
            f"<table class='numbers'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    charts = "".join(f"<figure>{svg}</figure>" for svg in figures(report))
    title = escape(f"Training run {report.run['run_id']}")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse;margin:1em 0}th,td{padding:.2em .6em;text-align:left}"
        ".numbers td{text-align:right}.numbers th{border-bottom:1px solid #999}"
        "figure{margin:1.5em 0}"
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body><h1>{title}</h1><table>{summary}</table>"
        f"{table}<h2>Figures</h2>{charts}</body></html>\n"
    )
