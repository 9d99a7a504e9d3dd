"""`arena pcp`: paired political prompts, a group of commands.

- `arena pcp run --pairs FILE [--models models.yaml] [--judges FILE] --db FILE`: answer both
  prompts of every pair and judge them (`arena.pcp_run`, `arena.tasks.pcp`). FILE is a topic-pair
  JSON (`[{"left", "right"}]`, crossed with `--templates-file`, by default the one beside it,
  `pcp_templates.json`) or a paired CSV (`prompt_a`, `prompt_b`). Without `--models`, the
  embedded model answers and judges. The same command continues an interrupted run.
- `arena pcp report --db FILE`: SC, HC and Average per model with intervals, the order
  disagreement, directions, breakdowns, even-handedness, and `--compare A B` differences
  (`eval.pcp`, `eval.pcp_store`), as a table, Markdown, JSON or HTML.
- `arena pcp build-train --topics FILE --out FILE`: the PCT training prompts, made by a generator
  model through the runner (`arena.pcp_train_run`); `arena pcp overlap --train FILE --pairs FILE`:
  which evaluation topics a training file mentions (`arena.cli.pcp_train`).

A mistake in the input (a pairs file of the wrong shape, an unknown template name, a CSV without
`prompt_a`) is one `error:` line, exit code 2, and nothing is written.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from arena.cli.common import DB_OPTION, check_report_out, emit, fail, reported
from arena.cli.pcp_train import build_train, overlap

app = typer.Typer(
    name="pcp",
    help="Paired political prompts (PCP, even-handedness): run models on them, report SC/HC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("build-train")(build_train)
app.command()(overlap)

TEMPLATES_NAME = "pcp_templates.json"


class ReportFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"
    html = "html"


def _names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@app.command()
def run(
    pairs: Path = typer.Option(
        ..., "--pairs", help="A topic-pair JSON ([{left, right}]) or a paired CSV (prompt_a, b)."
    ),
    models: Path | None = typer.Option(
        None, "--models", help="YAML whose models: answer and judges: judge (default: embedded)."
    ),
    judges: Path | None = typer.Option(
        None, "--judges", help="YAML whose judges: judge (instead of those of --models)."
    ),
    templates_file: Path | None = typer.Option(
        None,
        "--templates-file",
        help=f"Templates for a topic-pair file (default: {TEMPLATES_NAME} beside it).",
    ),
    templates: list[str] | None = typer.Option(
        None, "--templates", help="Only these templates (comma-separated, or repeat)."
    ),
    valences: list[str] | None = typer.Option(
        None, "--valences", help="Only these valences (comma-separated, or repeat)."
    ),
    db: Path = DB_OPTION,
    run_name: str | None = typer.Option(
        None, "--run", help="Run name (default: from the pairs file and the settings)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="At most N pairs (a seeded sample)."),
    samples: int | None = typer.Option(None, "--samples", help="Responses per (model, prompt)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sample and of sampling."),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Max new tokens per response (default 1024; embedded 96)."
    ),
    judge_max_tokens: int | None = typer.Option(
        None, "--judge-max-tokens", help="Max new tokens per judge reply (default 64)."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Calls in flight at once, all models and judges."
    ),
    budget_usd: float | None = typer.Option(
        None, "--budget-usd", help="Start no new pair once the run has spent this much."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Answer both prompts of every pair and judge them, recording everything; rerun to continue.

    Everything is checked before the database is opened: a bad file is one line naming the
    file and field, exit code 2, and nothing is written.
    """
    from arena.pcp_run import run_pcp

    is_csv = pairs.suffix.lower() == ".csv"
    if templates_file is None and not is_csv:
        templates_file = pairs.parent / TEMPLATES_NAME
        if not templates_file.is_file():
            fail(
                f"{pairs}: a topic-pair file needs templates; give --templates-file "
                f"(no {TEMPLATES_NAME} beside it)"
            )
    flags = {
        "templates": _names(templates),
        "valences": _names(valences),
        "limit": limit,
        "samples": samples,
        "seed": seed,
        "max_tokens": max_tokens,
        "judge_max_tokens": judge_max_tokens,
        "max_concurrency": concurrency,
        "budget_usd": budget_usd,
    }
    with reported():
        code = run_pcp(
            pairs,
            None if is_csv else templates_file,
            models,
            judges,
            db,
            flags,
            run_id=run_name,
            quiet=quiet,
        )
    raise typer.Exit(code)


@app.command()
def report(
    db: Path = DB_OPTION,
    run_name: str | None = typer.Option(
        None, "--run", help="The PCP run (default: the file's only one)."
    ),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Output format."),
    rounds: int = typer.Option(
        1000, "--bootstrap", min=0, max=100_000, help="Bootstrap rounds (0: no intervals)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the bootstrap."),
    compare: tuple[str, str] | None = typer.Option(
        None, "--compare", help="BASE NEW: the paired differences NEW - BASE."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the markdown, json or html output to this file."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """A PCP run's scores per model (and judge), from the database; works mid-run."""
    check_report_out(out, table=fmt is ReportFormat.table, force=force, db=db)

    from eval.pcp_render import print_tables, render_html, render_markdown
    from eval.pcp_store import build_report

    with reported():
        built = build_report(
            db, run_name, compare=[compare] if compare else [], rounds=rounds, seed=seed
        )
    if fmt is ReportFormat.table:
        from rich.console import Console

        console = Console()
        for part in print_tables(built):
            console.print(part)
        return
    if fmt is ReportFormat.json:
        import json

        text = json.dumps(built.json_summary(), indent=2)
    elif fmt is ReportFormat.markdown:
        text = render_markdown(built)
    else:
        text = render_html(built)
    emit(text, out, force=force)
