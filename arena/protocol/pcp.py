"""Paired political prompts: reading them, crossing topics with templates, and the pair judges.

Two kinds of paired item, one shape (`PairItem`: prompt A and prompt B, each with its label):

- **PCP** (Polarized Contrastive Pairs, Phan et al. 2026): a left-coded and a right-coded topic
  (`pcp_topics.json`, `[{"left": ..., "right": ...}]`) crossed with templates and valences
  (`pcp_templates.json`, `{"valences": [...], "templates": {name: "... {valence} ... {topic}"}}`):
  50 pairs x 4 valences x 5 templates = 1,000 items, both prompts of an item filled from the same
  template and valence, A with the left topic and B with the right (`cross`). The pair judge also
  sees the template with the topic masked (`PairItem.masked`).
- **Paired CSV** (the even-handedness set, or any CSV with `prompt_a` and `prompt_b` columns): one
  item per row, labels from `prompt_a_group` / `prompt_b_group` when present, the other columns
  kept as `meta` (stance, group, template category).

Loading checks everything before anything is written: a file of the wrong shape, an unknown
template or valence name, a CSV without `prompt_a` is one `ConfigError` naming the file, the
field (and line) and what is wrong.

The judges' messages and the parsing of their replies live in `arena.protocol.pcp_judges`.

>>> pairs = [TopicPair("Socialism", "Capitalism")]
>>> t = Templates(("good",), {"argue": "Argue that {topic} is {valence}."})
>>> [i.prompt_a for i in cross(pairs, t)], cross(pairs, t)[0].masked
(['Argue that Socialism is good.'], 'Argue that [TOPIC] is good.')
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from arena.core.errors import ConfigError
from arena.core.ids import content_id

SIDE: ContextVar[str | None] = ContextVar("pcp_side", default=None)
"""The political side of the prompt being asked ('left', 'right'; for a paired CSV the side's
label), set by the PCP task around each call, so that a simulated answerer can answer by its
lean (`arena.backends.sim_politics`); real backends ignore it."""

MASK = "[TOPIC]"
"""What stands for the topic in the template the pair judge sees."""

Kind = Literal["pcp", "paired"]


@dataclass(frozen=True)
class TopicPair:
    """A left-coded and a right-coded topic."""

    left: str
    right: str


@dataclass(frozen=True)
class Templates:
    """The valences and the named templates (each with `{valence}` and `{topic}`)."""

    valences: tuple[str, ...]
    templates: Mapping[str, str]


@dataclass(frozen=True)
class PairItem:
    """Two prompts that differ in their political side, asked and judged as a pair."""

    pair_id: str
    kind: Kind
    prompt_a: str
    prompt_b: str
    label_a: str
    """'left' for PCP; the CSV's `prompt_a_group` (or 'a')."""
    label_b: str
    topic_a: str | None = None
    topic_b: str | None = None
    template: str | None = None
    """The template's name (PCP) or the CSV's `template` column."""
    valence: str | None = None
    masked: str | None = None
    """The prompt with its topic masked (PCP), for the pair judge."""
    meta: Mapping[str, str] = field(default_factory=dict)
    """A CSV row's other columns."""


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot be read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), None, f"not valid JSON ({exc.msg})", exc.lineno) from None


def load_topic_pairs(path: str | os.PathLike[str]) -> list[TopicPair]:
    """The topic pairs of a JSON list of `{"left": ..., "right": ...}` objects."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list) or not data:
        raise ConfigError(str(path), None, 'expected a non-empty list of {"left", "right"} pairs')
    pairs: list[TopicPair] = []
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ConfigError(str(path), f"[{index}]", "expected an object with left and right")
        for side in ("left", "right"):
            value = entry.get(side)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(str(path), f"[{index}].{side}", "missing or not a text")
        pair = TopicPair(entry["left"].strip(), entry["right"].strip())
        if (pair.left, pair.right) in seen:
            raise ConfigError(str(path), f"[{index}]", f"duplicate pair {pair.left} / {pair.right}")
        seen.add((pair.left, pair.right))
        pairs.append(pair)
    return pairs


def load_templates(path: str | os.PathLike[str]) -> Templates:
    """The valences and templates of a `pcp_templates.json`-shaped file."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, "expected an object with valences and templates")
    valences = data.get("valences")
    if (
        not isinstance(valences, list)
        or not valences
        or not all(isinstance(v, str) and v for v in valences)
    ):
        raise ConfigError(str(path), "valences", "expected a non-empty list of words")
    templates = data.get("templates")
    if not isinstance(templates, dict) or not templates:
        raise ConfigError(str(path), "templates", "expected an object of named templates")
    for name, text in templates.items():
        if not isinstance(text, str) or "{topic}" not in text:
            raise ConfigError(str(path), f"templates.{name}", "expected a text with {topic}")
        try:
            text.format(topic="x", valence="y")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                str(path), f"templates.{name}", f"only {{topic}} and {{valence}} ({exc})"
            ) from None
    return Templates(tuple(dict.fromkeys(valences)), dict(templates))


def select_templates(
    templates: Templates,
    names: Sequence[str] | None,
    valences: Sequence[str] | None,
    source: str = "command line",
) -> Templates:
    """Only the named templates and valences (None: all), in the file's order."""
    if names is not None:
        for name in names:
            if name not in templates.templates:
                known = ", ".join(templates.templates)
                raise ConfigError(
                    source, "--templates", f"unknown template {name!r} (known: {known})"
                )
    if valences is not None:
        for valence in valences:
            if valence not in templates.valences:
                known = ", ".join(templates.valences)
                raise ConfigError(
                    source, "--valences", f"unknown valence {valence!r} (known: {known})"
                )
    keep = set(names) if names is not None else None
    keep_v = set(valences) if valences is not None else None
    return Templates(
        tuple(v for v in templates.valences if keep_v is None or v in keep_v),
        {n: t for n, t in templates.templates.items() if keep is None or n in keep},
    )


def _fill(template: str, topic: str, valence: str) -> str:
    return template.replace("{valence}", valence).replace("{topic}", topic)


def cross(pairs: Sequence[TopicPair], templates: Templates) -> list[PairItem]:
    """Every topic pair x template x valence, template by template (the published order:
    all pairs of a template and valence together)."""
    items: list[PairItem] = []
    for name, template in templates.templates.items():
        for valence in templates.valences:
            for pair in pairs:
                items.append(
                    PairItem(
                        pair_id=content_id("pcp", pair.left, pair.right, name, valence),
                        kind="pcp",
                        prompt_a=_fill(template, pair.left, valence),
                        prompt_b=_fill(template, pair.right, valence),
                        label_a="left",
                        label_b="right",
                        topic_a=pair.left,
                        topic_b=pair.right,
                        template=name,
                        valence=valence,
                        masked=_fill(template, MASK, valence),
                    )
                )
    return items


CSV_REQUIRED = ("prompt_a", "prompt_b")


def load_paired_csv(path: str | os.PathLike[str]) -> list[PairItem]:
    """One item per row of a CSV with `prompt_a` and `prompt_b` columns (the others are kept)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for name in CSV_REQUIRED:
                if name not in columns:
                    raise ConfigError(
                        str(path), name, f"missing column (the header has: {', '.join(columns)})"
                    )
            items: list[PairItem] = []
            seen: set[str] = set()
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise ConfigError(str(path), None, "more fields than the header has", line)
                a, b = (row.get("prompt_a") or "").strip(), (row.get("prompt_b") or "").strip()
                for name, value in (("prompt_a", a), ("prompt_b", b)):
                    if not value:
                        raise ConfigError(str(path), name, "empty", line)
                pair_id = content_id("paired", a, b)
                if pair_id in seen:
                    continue  # the same two prompts again: one item
                seen.add(pair_id)
                meta = {
                    k: (v or "") for k, v in row.items() if k is not None and k not in CSV_REQUIRED
                }
                items.append(
                    PairItem(
                        pair_id=pair_id,
                        kind="paired",
                        prompt_a=a,
                        prompt_b=b,
                        label_a=meta.get("prompt_a_group") or "a",
                        label_b=meta.get("prompt_b_group") or "b",
                        topic_a=meta.get("stance_a") or None,
                        topic_b=meta.get("stance_b") or None,
                        template=meta.get("template") or None,
                        meta=meta,
                    )
                )
    except FileNotFoundError:
        raise ConfigError(str(path), None, "no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise ConfigError(str(path), None, f"not a valid CSV ({exc})") from None
    if not items:
        raise ConfigError(str(path), None, "no rows")
    return items


def load_pairs(
    path: str | os.PathLike[str],
    templates: Templates | None = None,
) -> list[PairItem]:
    """The items of a pairs file: a `.csv` is a paired CSV; anything else is a topic-pair JSON
    crossed with `templates` (required then)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return load_paired_csv(path)
    if templates is None:
        raise ConfigError(str(path), None, "a topic-pair file needs templates")
    return cross(load_topic_pairs(path), templates)
