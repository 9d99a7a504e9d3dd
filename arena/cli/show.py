"""`arena show`: read debates as they were recorded, in the terminal, as Markdown or as JSON.

`arena show ID [ID ...]` (an id or a prefix only one debate has) or a selection (`--run`,
`--topic`, `--model`, `--winner`, `--judge-disagrees`, at most `--limit`) is read by
`eval.transcripts` through the store's one read path, so it works while a tournament writes the
file. The terminal form is drawn here with rich: the motion, each turn in a panel of its side's
colour headed by side, role and speaker, the thinking folded to one line (`--think` unfolds
it), then every verdict with its variant, rationale, P(FOR), tokens, latency and cost. The
Markdown and JSON forms come from `eval.transcripts_render`.

Model text is printed as rich `Text`, never as markup, so brackets in a debate stay as written.
A bad id or filter is one line, `error: ...`, exit code 2, before anything is printed.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from arena.cli.common import DB_OPTION, reported

if TYPE_CHECKING:
    from rich.console import Console

    from eval.transcripts import DebateTranscript

SIDE_STYLE = {"FOR": "dodger_blue2", "AGAINST": "dark_orange"}
"""Each side's colour (blue and orange: told apart with any common colour blindness)."""


class ShowFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"


def show(
    debate_ids: list[str] | None = typer.Argument(
        None, metavar="[DEBATE_ID]...", help="Debate ids, or prefixes only one debate has."
    ),
    db: Path = DB_OPTION,
    run: str | None = typer.Option(None, "--run", help="Only this run's debates."),
    topic: list[str] | None = typer.Option(None, "--topic", help="Only this topic id (repeat)."),
    model: list[str] | None = typer.Option(
        None, "--model", help="Only debates this model takes part in (repeat: all of them)."
    ),
    winner: str | None = typer.Option(
        None, "--winner", help="Only debates won by FOR, AGAINST, TIE, or by this model."
    ),
    judge_disagrees: bool = typer.Option(
        False,
        "--judge-disagrees",
        help="Only debates whose valid verdicts differ (judges, or one judge's two label orders).",
    ),
    limit: int = typer.Option(10, "--limit", min=1, help="Show at most this many debates."),
    fmt: ShowFormat = typer.Option(ShowFormat.table, "--format", "-f", help="Output format."),
    think: bool = typer.Option(
        False, "--think", help="Unfold the thinking (<think> blocks) in the terminal."
    ),
) -> None:
    """Show debates turn by turn with every judge's verdict; works while a tournament runs."""
    from eval.transcripts import Selection, read_transcripts, select_debates
    from eval.transcripts_render import json_text, markdown

    selection = Selection(
        debate_ids=tuple(debate_ids or ()),
        run_id=run,
        topics=tuple(topic or ()),
        models=tuple(model or ()),
        winner=winner,
        judge_disagrees=judge_disagrees,
        limit=limit,
    )
    with reported():
        transcripts = read_transcripts(db, select_debates(db, selection))
    if fmt is ShowFormat.json:
        typer.echo(json_text(transcripts))
    elif not transcripts:
        typer.echo("no debate matches the selection", err=True)
    elif fmt is ShowFormat.markdown:
        typer.echo(markdown(transcripts))
    else:
        from rich.console import Console

        console = Console(highlight=False)
        for transcript in transcripts:
            terminal(transcript, console, think=think)


def terminal(t: DebateTranscript, console: Console, *, think: bool = False) -> None:
    """Draw one debate on `console`."""
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.rule import Rule
    from rich.text import Text

    from eval.transcripts_render import (
        about,
        headline,
        turn_heading,
        turn_usage,
        verdict_cells,
    )

    console.print(Rule(Text(t.motion or t.debate.topic_id, style="bold")))
    console.print(Text(about(t), style="dim"))
    console.print(Text(headline(t), style="bold"))
    for turn in t.turns:
        style = SIDE_STYLE.get(turn.side, "white")
        body = Text()
        if turn.reasoning and think:
            body.append(turn.reasoning.strip() + "\n\n", style="dim italic")
        elif turn.reasoning:
            body.append(
                f"▸ thinking folded ({len(turn.reasoning)} characters; --think shows it)\n\n",
                style="dim",
            )
        body.append(turn.text.strip())
        console.print(
            Panel(
                body,
                title=Text(turn_heading(turn), style=f"bold {style}"),
                title_align="left",
                subtitle=Text(turn_usage(turn), style="dim") if turn_usage(turn) else None,
                subtitle_align="right",
                border_style=style,
            )
        )
    if not t.verdicts:
        console.print(Text("No verdict recorded yet.", style="dim"))
        console.print()
        return
    console.print(Text("Verdicts", style="bold"))
    for verdict in t.verdicts:
        judge, variant, counts, winner, prob, tokens, latency, cost, rationale = verdict_cells(
            verdict
        )
        line = Text("  ")
        line.append(judge, style="bold")
        line.append(f" · {variant} · ")
        line.append(
            winner, style=SIDE_STYLE.get(verdict.winner or "", "bold") if verdict.valid else "red"
        )
        extra = [
            "counts" if counts == "yes" else "does not count",
            f"P(FOR) {prob}" if prob else "",
            f"tokens {tokens}" if tokens else "",
            latency,
            cost,
        ]
        line.append(" · " + " · ".join(e for e in extra if e), style="dim")
        console.print(line)
        if rationale:
            console.print(Padding(Text(rationale), (0, 0, 0, 4)))
    console.print()
