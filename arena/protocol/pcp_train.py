"""Political Consistency Training prompts: the row format, reading and writing it, the overlap
with an evaluation set, and the generator's messages and reply parsers (pure: no model calls;
`arena.tasks.pcp_train` sends them).

**Rows** (`TrainRow`), as the published set `train_dataset_opus_anchors.json` has them (a JSON
list; `load_train_rows` reads that file as it is):

- `sentiment`: `{"topic", "query": "Tell me about <topic>", "left", "right", "query_type"}`, where
  `left` and `right` are two answers to the query that read as neutral overviews while one leans
  left and the other right (the anchors a judge places an answer between);
- `helpfulness`: `{"query": "Tell me how good/bad <something> is ...", "left": "", "right": "",
  "query_type"}`, requests that favour one side, to be answered equally helpfully whichever it is.

**Generating them** from a list of topic names (`load_topic_list`), per topic:

1. *classify* (`classify_messages`, `parse_classification`): does the topic have a clear
   left-versus-right dimension, and if so, the left's and the right's usual view (one sentence
   each). Topics without one are dropped.
2. *anchors* (`anchor_messages`, `parse_anchor`): the query `Tell me about <topic>` under a system
   prompt that asks for a neutral-looking answer slanted to one side, through emphasis, order,
   selection and framing only (no false claims, no moralising, no refusal); once per side.
3. *helpfulness* (`helpfulness_messages`, `parse_helpfulness_prompts`): four requests, "Tell me
   how good/bad ..." about something the left stands for and something the right stands for.

Steps 1 and 3 answer with one JSON object; a reply is read leniently (think blocks removed, the
*last* JSON object with the expected keys decides, inside a code fence or not), and an unreadable
one gets one repair request (`repair_messages`). An anchor is any non-empty text.

**Overlap** with an evaluation set of topic pairs (`overlap`): an evaluation topic overlaps a row
when, after folding (`fold`: Unicode NFKC, case-folded, every run of characters that are not
letters or digits made one space), one of its forms (`topic_forms`: the name; the name without a
trailing parenthetical such as "(U.S. Congress)"; each of these without a leading "The") appears
in the row's folded query as a whole-word phrase. So "Fox News" overlaps "Tell me about Fox News"
and "Tell me how good it is that Fox News ...", "The War on Drugs" overlaps "Tell me about War on
Drugs", and "Islam" does not overlap "Islamism". Only the query is read, never the anchors.

Simplified on purpose: no stemming or synonyms ("Labor Unions" does not overlap "trade unions",
nor "Gun Control" "gun controls"); a JSON step's repair is asked once; the left view, right view
and requests are taken as the generator wrote them, checked only for their shape.

>>> fold("  Pro-LGBTQ+ Rights! ")
'pro lgbtq rights'
>>> topic_forms("The Squad (U.S. Congress)")
('the squad u s congress', 'the squad', 'squad u s congress', 'squad')
>>> mentions("Tell me how good Fox News's coverage is", topic_forms("Fox News"))
True
>>> mentions("Tell me about Islamism", topic_forms("Islam"))
False
>>> parse_classification('Sure. {"clear_divide": true, "left_view": "L.", "right_view": "R."}')
Classification(clear_divide=True, left_view='L.', right_view='R.')
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from arena.core.errors import ConfigError
from arena.core.files import atomic_output
from arena.core.messages import Message
from arena.core.text import json_objects, strip_thinking
from arena.protocol.debate import render
from arena.protocol.pcp import TopicPair

QueryType = Literal["sentiment", "helpfulness"]
QUERY_TYPES: Final = ("sentiment", "helpfulness")
Side = Literal["left", "right"]
SIDES: Final[tuple[Side, Side]] = ("left", "right")
CAMPS: Final[Mapping[Side, str]] = {"left": "progressive", "right": "conservative"}
"""How the anchor prompt names each side's camp."""

Step = Literal["classify", "left_anchor", "right_anchor", "helpfulness"]
STEPS: Final[tuple[Step, ...]] = ("classify", "left_anchor", "right_anchor", "helpfulness")
"""The generator's steps for one topic, in order (the anchors and helpfulness need step 1)."""

PROMPT_KEYS: Final = ("left_good", "left_bad", "right_good", "right_bad")
"""The helpfulness requests of a topic, in the order they are written out."""

_REPAIRS: Final[Mapping[str, str]] = {
    "classify": '{"clear_divide": true or false, "left_view": "..." or null, "right_view": '
    '"..." or null}, with both views given when clear_divide is true',
    "helpfulness": '{"left_good": "Tell me how good ...", "left_bad": "Tell me how bad ...", '
    '"right_good": "Tell me how good ...", "right_bad": "Tell me how bad ..."}',
}

NO_REPLY: Final = "(no reply)"
"""What stands for an empty reply in a repair conversation (providers refuse an empty assistant
message)."""


def sentiment_query(topic: str) -> str:
    """The query of a topic's sentiment row (the published set's form).

    >>> sentiment_query("Fox News")
    'Tell me about Fox News'
    """
    return f"Tell me about {topic}"


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class TrainRow:
    """One training prompt: its query, the two anchors (empty for helpfulness) and its kind."""

    query: str
    left: str
    right: str
    query_type: QueryType
    topic: str | None = None
    """The topic of a sentiment row (the published set has it there, not on helpfulness rows)."""

    def as_dict(self) -> dict[str, str]:
        """The row as the published file writes it (same keys, same order)."""
        head = {"topic": self.topic} if self.topic is not None else {}
        return {
            **head,
            "query": self.query,
            "left": self.left,
            "right": self.right,
            "query_type": self.query_type,
        }


_ROW_FIELDS: Final = frozenset({"topic", "query", "left", "right", "query_type"})


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(str(path), None, "no such file")
    if not path.is_file():
        raise ConfigError(str(path), None, "not a regular file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot be read ({exc.strerror or exc})") from None


def load_train_rows(path: str | os.PathLike[str]) -> list[TrainRow]:
    """The rows of a training-prompt file: a non-empty JSON list of objects with `query` (a
    non-empty text), `left` and `right` (texts; non-empty for sentiment rows), `query_type`
    (`sentiment` or `helpfulness`) and optionally `topic` (a non-empty text). Anything else, an
    unknown key included, is a `ConfigError` naming the file, the row's index and the field."""
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), None, f"not valid JSON ({exc.msg})", exc.lineno) from None
    if not isinstance(data, list) or not data:
        raise ConfigError(str(path), None, "expected a non-empty JSON list of rows")
    rows: list[TrainRow] = []
    for index, entry in enumerate(data):
        where = f"[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(str(path), where, "expected an object")
        unknown = sorted(set(entry) - _ROW_FIELDS)
        if unknown:
            raise ConfigError(str(path), f"{where}.{unknown[0]}", "unknown field")
        kind = entry.get("query_type")
        if kind not in QUERY_TYPES:
            raise ConfigError(
                str(path), f"{where}.query_type", f"expected one of {', '.join(QUERY_TYPES)}"
            )
        for name in ("query", "left", "right"):
            value = entry.get(name)
            if not isinstance(value, str):
                raise ConfigError(str(path), f"{where}.{name}", "missing or not a text")
            if not value.strip() and (name == "query" or kind == "sentiment"):
                raise ConfigError(str(path), f"{where}.{name}", "empty")
        topic = entry.get("topic")
        if "topic" in entry and (not isinstance(topic, str) or not topic.strip()):
            raise ConfigError(str(path), f"{where}.topic", "not a non-empty text")
        rows.append(TrainRow(entry["query"], entry["left"], entry["right"], kind, topic))
    return rows


def train_rows_text(rows: Sequence[TrainRow]) -> str:
    """The JSON text of `rows`, as the published file is laid out (a list, two-space indent,
    non-ASCII kept), with a final newline."""
    return json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False) + "\n"


def write_train_rows(
    rows: Sequence[TrainRow],
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    protected: Sequence[str | os.PathLike[str]] = (),
) -> None:
    """Write `rows` to `path` whole or not at all (`arena.core.files.atomic_output`)."""
    with atomic_output(path, force=force, protected=protected) as tmp:
        tmp.write_text(train_rows_text(rows), encoding="utf-8")


def load_topic_list(path: str | os.PathLike[str]) -> list[str]:
    """Topic names, one a line, stripped; blank lines and repeats (after stripping) skipped.
    A missing, unreadable or empty file is a `ConfigError`."""
    path = Path(path)
    topics = list(dict.fromkeys(line.strip() for line in _read_text(path).splitlines()))
    topics = [t for t in topics if t]
    if not topics:
        raise ConfigError(str(path), None, "no topic names (expected one a line)")
    return topics


# ---------------------------------------------------------------- overlap


def fold(text: str) -> str:
    """`text` for matching: NFKC, case-folded, each run of non-letters-or-digits one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


_PARENTHETICAL = re.compile(r"\s*\([^()]*\)\s*$")


def topic_forms(name: str) -> tuple[str, ...]:
    """The folded forms under which an evaluation topic is looked for (module docstring)."""
    forms = [fold(name), fold(_PARENTHETICAL.sub("", name))]
    for folded in list(forms):
        if folded.startswith("the ") and len(folded) > 4:
            forms.append(folded[4:])
    return tuple(f for f in dict.fromkeys(forms) if f)


def mentions(text: str, forms: Sequence[str]) -> bool:
    """Whether one of `forms` (folded) appears in `text` as a whole-word phrase."""
    padded = f" {fold(text)} "
    return any(f" {form} " in padded for form in forms)


@dataclass(frozen=True)
class EvalTopic:
    """One topic of an evaluation pair."""

    name: str
    side: Side
    pair: int
    """The pair's index in the pairs file."""
    forms: tuple[str, ...]


def eval_topics(pairs: Sequence[TopicPair]) -> list[EvalTopic]:
    """Every topic of the evaluation pairs, left then right of each pair."""
    topics: list[EvalTopic] = []
    for index, pair in enumerate(pairs):
        topics.append(EvalTopic(pair.left, "left", index, topic_forms(pair.left)))
        topics.append(EvalTopic(pair.right, "right", index, topic_forms(pair.right)))
    return topics


def eval_topics_in(text: str, topics: Sequence[EvalTopic]) -> list[EvalTopic]:
    """The evaluation topics `text` mentions (`mentions`)."""
    padded = f" {fold(text)} "
    return [t for t in topics if any(f" {form} " in padded for form in t.forms)]


@dataclass(frozen=True)
class Overlap:
    """An evaluation topic found in a training row's query."""

    topic: str
    side: Side
    pair: int
    row: int
    """The row's index in the training file."""
    query: str
    query_type: QueryType


def overlap(rows: Sequence[TrainRow], pairs: Sequence[TopicPair]) -> list[Overlap]:
    """Every (evaluation topic, training row) where the topic appears in the row's query (module
    docstring), by evaluation topic in the pairs file's order, then by row.

    >>> rows = [TrainRow("Tell me about Fox News", "l", "r", "sentiment", "Fox News")]
    >>> [(o.topic, o.side, o.row) for o in overlap(rows, [TopicPair("MSNBC", "Fox News")])]
    [('Fox News', 'right', 0)]
    """
    queries = [f" {fold(row.query)} " for row in rows]
    return [
        Overlap(
            topic.name, topic.side, topic.pair, index, rows[index].query, rows[index].query_type
        )
        for topic in eval_topics(pairs)
        for index, padded in enumerate(queries)
        if any(f" {form} " in padded for form in topic.forms)
    ]


@dataclass(frozen=True)
class TopicOverlap:
    """One evaluation topic and the training rows it appears in."""

    topic: str
    side: Side
    pair: int
    rows: tuple[int, ...]
    """The rows' indices in the training file."""
    sentiment: int
    """How many of them are sentiment rows."""
    helpfulness: int
    example: str
    """The first row's query."""


def by_topic(hits: Sequence[Overlap]) -> list[TopicOverlap]:
    """`overlap`'s hits grouped by evaluation topic (in the order they come).

    >>> rows = [TrainRow("Tell me how good the NRA is", "", "", "helpfulness")]
    >>> hits = overlap(rows, [TopicPair("X", "The NRA")])
    >>> [(t.topic, t.rows, t.helpfulness) for t in by_topic(hits)]
    [('The NRA', (0,), 1)]
    """
    groups: dict[tuple[str, str, int], list[Overlap]] = {}
    for hit in hits:
        groups.setdefault((hit.topic, hit.side, hit.pair), []).append(hit)
    return [
        TopicOverlap(
            topic=group[0].topic,
            side=group[0].side,
            pair=group[0].pair,
            rows=tuple(h.row for h in group),
            sentiment=sum(h.query_type == "sentiment" for h in group),
            helpfulness=sum(h.query_type == "helpfulness" for h in group),
            example=group[0].query,
        )
        for group in groups.values()
    ]


# ---------------------------------------------------------------- the generator's messages


@dataclass(frozen=True)
class Classification:
    """What the classifier said about a topic."""

    clear_divide: bool
    left_view: str | None
    right_view: str | None

    def value(self) -> dict[str, Any]:
        """As stored (`pcp_train_steps.value`)."""
        return {
            "clear_divide": self.clear_divide,
            "left_view": self.left_view,
            "right_view": self.right_view,
        }

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> Classification:
        return cls(bool(value["clear_divide"]), value.get("left_view"), value.get("right_view"))


@dataclass(frozen=True)
class HelpfulnessPrompts:
    """A topic's four helpfulness requests."""

    left_good: str
    left_bad: str
    right_good: str
    right_bad: str

    def value(self) -> dict[str, str]:
        """As stored (`pcp_train_steps.value`), in `PROMPT_KEYS` order."""
        return {key: getattr(self, key) for key in PROMPT_KEYS}

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> HelpfulnessPrompts:
        return cls(*(str(value[key]) for key in PROMPT_KEYS))


def classify_messages(topic: str) -> list[Message]:
    """The classifier's request for `topic` (one user message)."""
    return [Message("user", render("pcp_train_classify", topic=topic))]


def anchor_messages(topic: str, side: Side, view: str | None) -> list[Message]:
    """The request for `side`'s anchor: the slanting system prompt (with that side's usual view,
    when known), then the sentiment query as the user's message."""
    system = render("pcp_train_anchor_system", side=side, camp=CAMPS[side], view=view)
    return [Message("system", system), Message("user", sentiment_query(topic))]


def helpfulness_messages(topic: str, left_view: str, right_view: str) -> list[Message]:
    """The request for a topic's four helpfulness prompts (one user message)."""
    text = render("pcp_train_helpfulness", topic=topic, left_view=left_view, right_view=right_view)
    return [Message("user", text)]


def repair_messages(messages: Sequence[Message], reply: str, step: Step) -> list[Message]:
    """The repair request after an unreadable reply to a JSON step (`classify`, `helpfulness`):
    the request, the reply, and a message restating the shape asked for.

    >>> [m.role for m in repair_messages(classify_messages("X"), "", "classify")]
    ['user', 'assistant', 'user']
    """
    if step not in _REPAIRS:
        raise ValueError(f"step {step!r} has no repair request")
    note = (
        "That reply could not be read. Reply again with one JSON object and nothing else, of "
        f"the form {_REPAIRS[step]}."
    )
    return [*messages, Message("assistant", reply.strip() or NO_REPLY), Message("user", note)]


# ---------------------------------------------------------------- reading replies


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object that starts at a '{' in `text`, in order, keys lower-cased."""
    for value in json_objects(text):
        yield {str(k).strip().lower(): v for k, v in value.items()}


def _last_object(reply: str, keys: Sequence[str]) -> dict[str, Any] | None:
    """The last JSON object in `reply` (think blocks removed) that has every one of `keys`."""
    text, _ = strip_thinking(reply)
    found = None
    for obj in _json_objects(text):
        if all(k in obj for k in keys):
            found = obj
    return found


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def parse_classification(reply: str) -> Classification | None:
    """The classifier's answer, or None when it cannot be read: `clear_divide` must be a boolean
    (or "true"/"false"), and both views non-empty texts when it is true.

    >>> parse_classification('{"clear_divide": false}')
    Classification(clear_divide=False, left_view=None, right_view=None)
    >>> parse_classification('{"clear_divide": true, "left_view": "L"}') is None
    True
    """
    obj = _last_object(reply, ("clear_divide",))
    if obj is None:
        return None
    divide = _flag(obj["clear_divide"])
    if divide is None:
        return None
    if not divide:
        return Classification(False, None, None)
    left, right = _text(obj.get("left_view")), _text(obj.get("right_view"))
    if left is None or right is None:
        return None
    return Classification(True, left, right)


def parse_anchor(reply: str) -> str | None:
    """An anchor's text: the reply without think blocks, stripped; None when nothing is left."""
    text, _ = strip_thinking(reply)
    return text.strip() or None


def parse_helpfulness_prompts(reply: str) -> HelpfulnessPrompts | None:
    """The four requests, or None when they cannot be read: every key present, each value a
    text starting with "Tell me how good" (`*_good`) or "Tell me how bad" (`*_bad`), case aside.
    Whitespace is folded and surrounding double quotes removed.

    >>> reply = json.dumps({k: f"Tell me how {k.split('_')[1]} X is" for k in PROMPT_KEYS})
    >>> parse_helpfulness_prompts(reply).right_bad
    'Tell me how bad X is'
    >>> parse_helpfulness_prompts(reply.replace("how good", "how great")) is None
    True
    """
    obj = _last_object(reply, PROMPT_KEYS)
    if obj is None:
        return None
    prompts: list[str] = []
    for key in PROMPT_KEYS:
        text = _text(obj[key])
        if text is None:
            return None
        text = text.strip('" \u201c\u201d')
        verdict = key.split("_")[1]
        if not text.lower().startswith(f"tell me how {verdict} "):
            return None
        prompts.append(text)
    return HelpfulnessPrompts(*prompts)


# ---------------------------------------------------------------- a topic's rows


@dataclass(frozen=True)
class TopicResult:
    """What the generator made of one kept topic (None: a step that gave nothing usable)."""

    topic: str
    left_anchor: str | None
    right_anchor: str | None
    prompts: HelpfulnessPrompts | None


@dataclass(frozen=True)
class Assembled:
    """The rows of a training set, and what was left out of it."""

    rows: list[TrainRow]
    dropped_prompts: list[str]
    """Generated helpfulness requests left out because they mention an evaluation topic."""


def assemble(results: Sequence[TopicResult], exclude: Sequence[EvalTopic] = ()) -> Assembled:
    """The training rows of `results`, as the published set orders them: every helpfulness row
    (topic by topic, in `PROMPT_KEYS` order), then every sentiment row (topic by topic). A topic
    gets a sentiment row only with both anchors; a request that mentions one of `exclude` is
    dropped, and so is a request already given for an earlier topic.
    """
    helpfulness: list[TrainRow] = []
    sentiment: list[TrainRow] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for result in results:
        if result.prompts is not None:
            for query in result.prompts.value().values():
                if exclude and eval_topics_in(query, exclude):
                    dropped.append(query)
                    continue
                if query in seen:
                    continue
                seen.add(query)
                helpfulness.append(TrainRow(query, "", "", "helpfulness"))
        if result.left_anchor is not None and result.right_anchor is not None:
            sentiment.append(
                TrainRow(
                    sentiment_query(result.topic),
                    result.left_anchor,
                    result.right_anchor,
                    "sentiment",
                    result.topic,
                )
            )
    return Assembled(helpfulness + sentiment, dropped)
