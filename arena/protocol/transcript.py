"""How a debate transcript is written for a judge, and how to read it back.

Judges see each turn under a header that names its position, its speaker and its role, and never
a model name. The speaker is the side (FOR, AGAINST), or, for a judge that checks its verdicts for
label bias (`swap_check`), a neutral label (Debater A, Debater B). The simulated judge reads
transcripts in this layout, so the layout lives in one place.

>>> turn_header(3, "FOR", "rebuttal")
'[Turn 3 | FOR | rebuttal]'
>>> turn_header(2, debater_label("B"), "opening")
'[Turn 2 | Debater B | opening]'
>>> split_transcript("[Turn 1 | FOR | opening]\\nYes.\\n\\n[Turn 2 | AGAINST | opening]\\nNo.")
[(1, 'FOR', 'Yes.'), (2, 'AGAINST', 'No.')]
>>> split_transcript("[Turn 1 | Debater B | opening]\\nYes.")
[(1, 'Debater B', 'Yes.')]
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\[Turn (\d+) \| (FOR|AGAINST|Debater [AB]) \| (\w+)\]$", re.MULTILINE)
END_OF_TRANSCRIPT = "[End of transcript]"
LETTERS = ("A", "B")
"""The neutral labels' letters."""


def debater_label(letter: str) -> str:
    """The neutral label of the speaker called `letter` ("A" or "B")."""
    return f"Debater {letter}"


def turn_header(turn_index: int, speaker: str, role: str) -> str:
    """A turn's header; `speaker` is a side (FOR, AGAINST) or a neutral label (Debater A)."""
    return f"[Turn {turn_index} | {speaker} | {role}]"


def split_transcript(text: str) -> list[tuple[int, str, str]]:
    """(turn index, speaker, text) for every turn header found in `text`; the speaker is a side
    or a neutral label, as the header has it."""
    text = text.split(END_OF_TRANSCRIPT, 1)[0]
    matches = list(_HEADER.finditer(text))
    out: list[tuple[int, str, str]] = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out.append((int(match.group(1)), match.group(2), text[match.end() : end].strip()))
    return out
