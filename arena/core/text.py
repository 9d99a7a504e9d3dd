"""Text clean-up shared by debaters and judges.

Reasoning models wrap their private thinking in `<think>...</think>`. The opponent and the judges
must see only the argument, so `strip_thinking` removes closed blocks and an unterminated block (a
model that ran out of tokens while thinking) up to the end of the text. The raw text is kept
beside the clean text in the database.

>>> strip_thinking("<think>plan</think>The motion fails.")
('The motion fails.', 'plan')
>>> strip_thinking("Intro <think>never closed")
('Intro', 'never closed')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_CLOSED = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_OPEN = re.compile(r"<think>(.*)\Z", re.DOTALL | re.IGNORECASE)
# Some chat templates put the opening tag in the prompt, so the reply starts inside the block.
_LEADING_CLOSE = re.compile(r"\A(.*?)</think>", re.DOTALL | re.IGNORECASE)


def strip_thinking(raw: str) -> tuple[str, str | None]:
    """Return (text without think blocks, the removed thinking or None)."""
    thoughts: list[str] = []

    def keep(match: re.Match[str]) -> str:
        thoughts.append(match.group(1).strip())
        return ""

    text = _CLOSED.sub(keep, raw)
    if "<think>" not in raw.lower() and "</think>" in text.lower():
        text = _LEADING_CLOSE.sub(keep, text, count=1)
    text = _OPEN.sub(keep, text)
    text = text.strip()
    return text, ("\n\n".join(t for t in thoughts if t) or None) if thoughts else None


def normalize_whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space (used to compare texts)."""
    return " ".join(text.split())


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object that starts at a '{' in `text`, in order (a reply may wrap one in prose
    or code fences).

    >>> list(json_objects('Sure: {"a": 1} and {"b": [2]} but not {oops}'))
    [{'a': 1}, {'b': [2]}]
    """
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pass
        else:
            if isinstance(value, dict):
                yield value
        start = text.find("{", start + 1)
