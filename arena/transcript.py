"""How a debate transcript is written for a judge, and how to read it back.

Judges see each turn under a header that names its position, side and role, and never a model
name. The simulated judge reads transcripts in this layout, so the layout lives in one place.

>>> turn_header(3, "FOR", "rebuttal")
'[Turn 3 | FOR | rebuttal]'
>>> split_transcript("[Turn 1 | FOR | opening]\\nYes.\\n\\n[Turn 2 | AGAINST | opening]\\nNo.")
[(1, 'FOR', 'Yes.'), (2, 'AGAINST', 'No.')]
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\[Turn (\d+) \| (FOR|AGAINST) \| (\w+)\]$", re.MULTILINE)
END_OF_TRANSCRIPT = "[End of transcript]"


def turn_header(turn_index: int, side: str, role: str) -> str:
    return f"[Turn {turn_index} | {side} | {role}]"


def split_transcript(text: str) -> list[tuple[int, str, str]]:
    """(turn index, side, text) for every turn header found in `text`."""
    text = text.split(END_OF_TRANSCRIPT, 1)[0]
    matches = list(_HEADER.finditer(text))
    out: list[tuple[int, str, str]] = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out.append((int(match.group(1)), match.group(2), text[match.end() : end].strip()))
    return out
