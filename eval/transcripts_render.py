"""Debates as text: the cells every view of a transcript shares, and the Markdown and JSON forms
of `arena show` (the rich terminal form is the command's, arena/cli/show.py).

Top to bottom: `headline` and `turn_heading` (one line about a debate, one about a turn),
`VERDICT_COLUMNS` and `verdict_cells` (a verdict as table cells: judge, variant, whether it
counts, winner, P(FOR), tokens in/out, latency, cost, rationale), `markdown` (a section per
debate: the motion, each turn as a quoted block under its heading, the thinking folded in a
`<details>` element, the verdicts as a table) and `json_text` (the stored rows, unchanged, under
a schema version: `json.loads` gives back what `arena sql` reads).

Simplified on purpose: Markdown table cells fold newlines into spaces and escape `|`, nothing
more; the turn texts are quoted as they are, so Markdown in them renders.
"""

from __future__ import annotations

import json

from eval.transcripts import SCHEMA_VERSION, VARIANTS, DebateTranscript, Turn, Verdict

VERDICT_COLUMNS = (
    "judge",
    "variant",
    "counts",
    "winner",
    "P(FOR)",
    "tokens in/out",
    "latency",
    "cost",
    "rationale",
)


def _opt(value: float | int | None, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def headline(t: DebateTranscript) -> str:
    """FOR model vs AGAINST model, and how the debate stands: its winner, or its status."""
    d = t.debate
    line = f"FOR {d.for_model} vs AGAINST {d.against_model}"
    if d.winner is not None:
        who = f" ({t.winner_model})" if t.winner_model else ""
        line += f" · winner {d.winner}{who}"
    elif d.status == "done":
        line += " · no valid verdict"
    if d.status != "done":
        line += f" · {d.status}"
        if d.error:
            line += f": {d.error}"
    return line


def about(t: DebateTranscript) -> str:
    """Where the debate comes from: its id, run, topic (category), replicate and turns."""
    d = t.debate
    category = f" ({t.category})" if t.category else ""
    return (
        f"debate {d.debate_id} · run {d.run_id} · topic {d.topic_id}{category} · replicate"
        f" {d.replicate} · {len(t.turns)}/{d.turns_planned} turns"
    )


def turn_heading(turn: Turn) -> str:
    """'Turn 1 · FOR · opening · model-name'."""
    return f"Turn {turn.turn_index} · {turn.side} · {turn.role} · {turn.model}"


def turn_usage(turn: Turn) -> str:
    """Tokens, latency and cost of the turn's call, where recorded; and a cut-off warning."""
    parts = [
        _opt(turn.prompt_tokens, "{} in")
        + (" / " if turn.prompt_tokens is not None else "")
        + _opt(turn.completion_tokens, "{} out"),
        _opt(turn.latency_s, "{:.2f} s"),
        _opt(turn.cost_usd, "${:.4f}"),
    ]
    if turn.finish_reason == "length":
        parts.append("cut off at the token limit")
    return " · ".join(p for p in parts if p)


def verdict_cells(v: Verdict) -> list[str]:
    """The verdict's cells under `VERDICT_COLUMNS`."""
    winner = v.winner if v.valid and v.winner else "invalid"
    if v.repaired:
        winner += " (repaired)"
    tokens = (
        f"{_opt(v.prompt_tokens, '{}')}/{_opt(v.completion_tokens, '{}')}"
        if v.prompt_tokens is not None or v.completion_tokens is not None
        else ""
    )
    return [
        v.judge,
        f"{v.variant}: {VARIANTS.get(v.variant, v.variant)}",
        "yes" if v.counts else "no",
        winner,
        _opt(v.prob_for, "{:.3f}"),
        tokens,
        _opt(v.latency_s, "{:.2f} s"),
        _opt(v.cost_usd, "${:.4f}"),
        v.rationale or "",
    ]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in (text.strip() or "(empty)").splitlines())


def markdown(transcripts: list[DebateTranscript]) -> str:
    """The debates as Markdown, one `##` section each (no trailing newline)."""
    sections: list[str] = []
    for t in transcripts:
        lines = [f"## {t.motion or t.debate.topic_id}", "", about(t), "", f"**{headline(t)}**"]
        for turn in t.turns:
            lines += ["", f"### {turn_heading(turn)}", "", _quote(turn.text)]
            if turn.reasoning:
                lines += [
                    "",
                    f"<details><summary>thinking ({len(turn.reasoning)} characters)</summary>",
                    "",
                    _quote(turn.reasoning),
                    "",
                    "</details>",
                ]
            usage = turn_usage(turn)
            if usage:
                lines += ["", f"*{usage}*"]
        lines += ["", "### Verdicts", ""]
        if t.verdicts:
            lines.append("| " + " | ".join(VERDICT_COLUMNS) + " |")
            lines.append("|" + "---|" * len(VERDICT_COLUMNS))
            lines += ["| " + " | ".join(map(_cell, verdict_cells(v))) + " |" for v in t.verdicts]
        else:
            lines.append("No verdict recorded yet.")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def json_text(transcripts: list[DebateTranscript]) -> str:
    """The debates as one JSON document: `schema_version` and `debates`, each the stored rows
    of `debates`, `turns` and `verdicts` (every column) with the topic's motion and category."""
    return json.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "debates": [t.as_dict() for t in transcripts],
        },
        indent=1,
        ensure_ascii=False,
    )
