"""Judge-scored rewards for Political Consistency Training with TRL's GRPO trainer.

The training prompts (`{query, left, right, query_type}`, the PCT training set) come in two kinds,
told apart by the `query_type` column, and each kind has its reward:

- `sentiment` rows ("Tell me about {topic}", with a left-leaning and a right-leaning anchor
  answer in `left` and `right`): the **anchored sentiment reward**. A judge places the completion
  between the two anchors (`bias` 1..5, 3 even-handed) and says whether it is of any use
  (`helpfulness` 0 encyclopedic or broken, 1 fence-sitting, 2 a real answer); the reward is
  `bias_factor[bias] * helpfulness_factor[helpfulness]`, by default
  bias 1, 2, 3, 4, 5 -> 1, 2, 4, 2, 1 and helpfulness 0, 1, 2 -> 0, 1, 3: an even-handed, useful
  answer earns 12, a slanted or evasive one little.
- `helpfulness` rows ("Tell me how good {topic} is", no anchors): the **helpfulness reward**. A
  judge scores the completion 0..5, mapped to -4, -2, -1, -0.5, +1, +2; optionally minus
  `header_penalty` when the completion has a Markdown header (a line `# ...` to `###### ...`).

A third reward, for a dataset of PCP pairs instead (`arena.protocol.pcp`: two prompts that differ
only in a left-coded or a right-coded topic, generated in the same step):

- `paired_sentiment_reward(judge)`: the PCP consistency judge (`arena.protocol.pcp_judges`)
  compares a completion of the left prompt with one of the right prompt (asymmetry 0, 1 or 2),
  and each completion's reward is `(1 - asymmetry / 2) * helpfulness_factor[its helpfulness]`,
  its helpfulness (0..2) from the PCP helpfulness judge (`PairedSentimentReward`).

`anchored_sentiment_reward(judge)` and `helpfulness_reward(judge)` score the rows of their own kind
and give None for the others (TRL reads None as "not applicable": NaN, left out of its nansum over
reward functions), so both can be passed to `GRPOTrainer(reward_funcs=[...])` together;
`pct_reward(judge)` does the same in one function, routing each row by its `query_type`. Rewards
are `async` (TRL runs every async reward function of a step concurrently on one event loop of its
own, in a daemon thread) and judge the whole batch at once with `asyncio.gather`; the judge client
bounds the calls in flight. `synchronous(reward)` runs one on a private event loop instead, for a
trainer that calls reward functions synchronously.

The judge is injected: anything with `async complete(messages, *, purpose) -> str` (`JudgeClient`),
in practice `arena.judges.reward_client.RewardJudge`, which sends the calls through the engine
(limits, retries, a `calls` row per attempt) and caches replies by request. The completion is
judged without its think blocks (`arena.core.text.strip_thinking`: closed blocks, and an unclosed
one up to the end). The question shown to the judge is the row's `query` column when the dataset
has one, else the prompt's last user message.

Failures never stop training. A judge call that fails after the client's retries (it raises
`BackendError`), or a reply that cannot be read even after one repair request
(`arena.protocol.pcp_reward_judges`), gives its completion the mean reward of the other
completions of its group that were scored, so that its advantage is zero; 0.0 when none of its
group was. A group is the completions of one prompt in this call (TRL's `num_generations`; under
data parallelism, the part of the group this process holds). Every outcome is counted in the
reward's `stats` (`RewardStats`), and, when TRL passes its `log_metric`, logged each step as
`<name>/judge_fallback` and `<name>/judge_repaired` (shares of the step's judgements). Any other
exception (a failed store, a bug) propagates.

>>> import asyncio
>>> class Judge:
...     async def complete(self, messages, *, purpose):
...         return '{"bias": 3, "helpfulness": 2}' if "Reference L" in messages[0].content \\
...             else '{"score": 4}'
>>> reward = pct_reward(Judge())
>>> asyncio.run(reward(["Tell me about X", "Tell me how good Y is"], ["An answer.", "Another."],
...     query_type=["sentiment", "helpfulness"], left=["L", ""], right=["R", ""]))
[12.0, 1.0]
>>> reward.stats.judged, reward.stats.fallbacks
(2, 0)

Simplified on purpose: one repair request at most; groups are found by comparing prompts, so two
rows of a batch with the same prompt count as one group; the header penalty is the only rule-based
part (no length or format rewards); a completion whose judge failed gets no header penalty; the
paired reward matches a pair's completions in the order they come and judges each match in one
presentation order (alternating over the matches), not both.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, TypeVar

from arena.core.errors import BackendError
from arena.core.messages import Message
from arena.core.text import strip_thinking
from arena.protocol import pcp_judges
from arena.protocol.pcp_reward_judges import (
    ANCHORED_HELPFULNESS_RANGE,
    ANCHORED_REPAIR,
    BIAS_RANGE,
    HELPFULNESS_RANGE,
    HELPFULNESS_REPAIR,
    NO_REPLY,
    AnchoredScore,
    anchored_messages,
    helpfulness_messages,
    parse_anchored,
    parse_helpfulness,
    repair_messages,
)
from pairing.rewards import completion_text

QueryType = Literal["sentiment", "helpfulness"]
QUERY_TYPES: Final[tuple[QueryType, ...]] = ("sentiment", "helpfulness")
"""The values of the `query_type` column."""

PURPOSES: Final[Mapping[QueryType, str]] = MappingProxyType(
    {"sentiment": "reward_anchored", "helpfulness": "reward_helpfulness"}
)
"""`calls.purpose` of each judge's requests; a repair request's purpose ends in `_repair`."""

DEFAULT_BIAS_FACTOR: Final[Mapping[int, float]] = MappingProxyType(
    {1: 1.0, 2: 2.0, 3: 4.0, 4: 2.0, 5: 1.0}
)
DEFAULT_HELPFULNESS_FACTOR: Final[Mapping[int, float]] = MappingProxyType({0: 0.0, 1: 1.0, 2: 3.0})
DEFAULT_HELPFULNESS_REWARD: Final[Mapping[int, float]] = MappingProxyType(
    {0: -4.0, 1: -2.0, 2: -1.0, 3: -0.5, 4: 1.0, 5: 2.0}
)

_HEADER = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]|$)", re.MULTILINE)

T = TypeVar("T")


class JudgeClient(Protocol):
    """What the rewards need of a judge: one chat request in, the reply's text out.

    `complete` raises `arena.core.errors.BackendError` when the call failed for good (after the
    client's own retries); the reward then falls back to the group mean. Anything else it raises
    propagates. `purpose` names the request (`calls.purpose`).
    """

    async def complete(self, messages: list[Message], *, purpose: str) -> str: ...


def _score_map(name: str, values: Mapping[Any, float], scores: range) -> Mapping[int, float]:
    """`values` checked to map exactly the whole numbers of `scores` to finite numbers (keys may
    be given as strings, as YAML and JSON write them), read-only."""
    out: dict[int, float] = {}
    for key, value in values.items():
        try:
            score = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: key {key!r} is not a whole number") from None
        if isinstance(key, float | bool) or str(score) != str(key).strip():
            raise ValueError(f"{name}: key {key!r} is not a whole number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{name}: the value for {score} must be finite")
        out[score] = number
    if sorted(out) != list(scores):
        raise ValueError(
            f"{name} must map each of {scores.start}..{scores.stop - 1} exactly once,"
            f" not {sorted(out)}"
        )
    return MappingProxyType(out)


@dataclass(frozen=True)
class RewardMaps:
    """How judge scores become rewards (the published maps by default).

    >>> maps = RewardMaps(header_penalty=0.5)
    >>> maps.anchored(AnchoredScore(bias=3, helpfulness=2)), maps.helpfulness(5, has_header=True)
    (12.0, 1.5)
    >>> RewardMaps(bias_factor={1: 0, 2: 1, 3: 2, 4: 1})
    Traceback (most recent call last):
    ...
    ValueError: bias_factor must map each of 1..5 exactly once, not [1, 2, 3, 4]
    """

    bias_factor: Mapping[int, float] = field(default_factory=lambda: DEFAULT_BIAS_FACTOR)
    """Anchored judge's bias score (1 as left as the left anchor .. 3 even-handed .. 5 as right as
    the right anchor) -> a factor."""
    helpfulness_factor: Mapping[int, float] = field(
        default_factory=lambda: DEFAULT_HELPFULNESS_FACTOR
    )
    """Anchored judge's helpfulness score (0 encyclopedic or broken, 1 fence-sitting, 2 a real
    answer) -> a factor; the anchored reward is the product of the two factors."""
    helpfulness_reward: Mapping[int, float] = field(
        default_factory=lambda: DEFAULT_HELPFULNESS_REWARD
    )
    """Helpfulness judge's score (0..5) -> the helpfulness reward."""
    header_penalty: float = 0.0
    """Subtracted from the helpfulness reward of a completion with a Markdown header (0: off)."""

    def __post_init__(self) -> None:
        for name, scores in (
            ("bias_factor", BIAS_RANGE),
            ("helpfulness_factor", ANCHORED_HELPFULNESS_RANGE),
            ("helpfulness_reward", HELPFULNESS_RANGE),
        ):
            object.__setattr__(self, name, _score_map(name, getattr(self, name), scores))
        penalty = float(self.header_penalty)
        if not (math.isfinite(penalty) and penalty >= 0):
            raise ValueError("header_penalty must be a finite number >= 0 (it is subtracted)")
        object.__setattr__(self, "header_penalty", penalty)

    def anchored(self, score: AnchoredScore) -> float:
        """The anchored sentiment reward of one judged completion."""
        return self.bias_factor[score.bias] * self.helpfulness_factor[score.helpfulness]

    def helpfulness(self, score: int, *, has_header: bool) -> float:
        """The helpfulness reward of one judged completion."""
        return self.helpfulness_reward[score] - (self.header_penalty if has_header else 0.0)


@dataclass
class RewardStats:
    """Counts of what happened to the completions a reward was given."""

    judged: int = 0
    """Completions sent to the judge."""
    scored: int = 0
    """... whose score was read (after a repair or not)."""
    repaired: int = 0
    """... whose first reply was unreadable and the repair request's reply was read."""
    failed: int = 0
    """... whose judge call (or repair call) failed after the client's retries."""
    unparseable: int = 0
    """... whose reply could not be read even after the repair request."""
    not_applicable: int = 0
    """Rows of another kind, given None."""
    last_error: str | None = None
    """The message of the last failed call."""

    @property
    def fallbacks(self) -> int:
        """Completions given their group's mean reward: `failed + unparseable`."""
        return self.failed + self.unparseable

    def add(self, other: RewardStats) -> None:
        """Add `other`'s counts to these (and take its last error, if it has one)."""
        for name in ("judged", "scored", "repaired", "failed", "unparseable", "not_applicable"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.last_error = other.last_error or self.last_error


class _Fallback:
    """The outcome of a completion the judge could not score."""


FALLBACK: Final = _Fallback()


def has_markdown_header(text: str) -> bool:
    """Whether `text` has a Markdown ATX header: a line of one to six `#` and a space (up to three
    spaces of indent), as a renderer would show as a heading.

    >>> has_markdown_header("Intro\\n## Background\\nText"), has_markdown_header("#1 issue")
    (True, False)
    """
    return _HEADER.search(text) is not None


def prompt_text(prompt: Any) -> str:
    """The text of a prompt: a string as it is; for a list of chat messages, the content of the
    last user message.

    >>> prompt_text([{"role": "system", "content": "Be brief."},
    ...              {"role": "user", "content": "Tell me about X"}])
    'Tell me about X'
    """
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        for message in reversed(prompt):
            if isinstance(message, Mapping) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else completion_text([message])
    return ""


def _group_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)


def _column(kwargs: Mapping[str, Any], name: str, n: int, reward: str) -> list[Any]:
    if name not in kwargs:
        raise KeyError(f"{reward} needs the dataset column {name!r}")
    values = list(kwargs[name])
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} entries for {n} completions")
    return values


class PCTReward:
    """A judge-scored GRPO reward for some kinds of rows (module docstring); build it with
    `anchored_sentiment_reward`, `helpfulness_reward` or `pct_reward`.

    Called as TRL calls reward functions, and awaited: one float per completion of a row of one
    of `kinds`, None for the others (a reward for every kind refuses a row of an unknown kind).
    """

    def __init__(
        self,
        judge: JudgeClient,
        maps: RewardMaps | None = None,
        *,
        kinds: Sequence[QueryType] = QUERY_TYPES,
        name: str = "pct_reward",
    ):
        unknown = [k for k in kinds if k not in QUERY_TYPES]
        if unknown or not kinds:
            raise ValueError(f"kinds must be among {QUERY_TYPES}, not {list(kinds)}")
        self.judge = judge
        self.maps = maps or RewardMaps()
        self.kinds: tuple[QueryType, ...] = tuple(dict.fromkeys(kinds))
        self.__name__ = name
        """The name TRL logs the reward under."""
        self.stats = RewardStats()
        """Totals over every call."""
        self.last_batch = RewardStats()
        """The counts of the last call alone."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r}, kinds={self.kinds})"

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts for {n} completions")
        kinds = self._kinds(kwargs, n)
        needs_anchors = "sentiment" in kinds
        left = _column(kwargs, "left", n, self.__name__) if needs_anchors else []
        right = _column(kwargs, "right", n, self.__name__) if needs_anchors else []
        queries = (
            [str(q) for q in _column(kwargs, "query", n, self.__name__)]
            if "query" in kwargs
            else [prompt_text(p) for p in prompts]
        )
        for i, kind in enumerate(kinds):
            if kind == "sentiment" and not (
                isinstance(left[i], str)
                and left[i].strip()
                and isinstance(right[i], str)
                and right[i].strip()
            ):
                raise ValueError(f"row {i} is a sentiment row without both anchors (left, right)")

        batch = RewardStats()
        answers = [strip_thinking(completion_text(c))[0] for c in completions]
        jobs: list[Coroutine[Any, Any, float | _Fallback]] = []
        rows: list[int] = []
        for i, kind in enumerate(kinds):
            if kind == "sentiment":
                jobs.append(self._anchored(queries[i], left[i], right[i], answers[i], batch))
            elif kind == "helpfulness":
                jobs.append(self._helpfulness(queries[i], answers[i], batch))
            else:
                batch.not_applicable += 1
                continue
            rows.append(i)
        outcomes = await asyncio.gather(*jobs)
        results: list[float | _Fallback | None] = [None] * n
        for i, outcome in zip(rows, outcomes, strict=True):
            results[i] = outcome
        self.last_batch = batch
        self.stats.add(batch)
        _log(kwargs.get("log_metric"), self.__name__, batch)
        return fill_fallbacks(results, [_group_key(p) for p in prompts])

    def _kinds(self, kwargs: Mapping[str, Any], n: int) -> list[QueryType | None]:
        """Each row's kind if this reward scores it, else None."""
        if "query_type" not in kwargs:
            if len(self.kinds) > 1:
                raise KeyError(f"{self.__name__} needs the dataset column 'query_type'")
            return [self.kinds[0]] * n
        out: list[QueryType | None] = []
        for i, value in enumerate(_column(kwargs, "query_type", n, self.__name__)):
            if value in self.kinds:
                out.append(value)
            elif set(self.kinds) == set(QUERY_TYPES):
                raise ValueError(
                    f"row {i}: query_type {value!r} is not one of {', '.join(QUERY_TYPES)}"
                )
            else:
                out.append(None)
        return out

    async def _anchored(
        self, query: str, left: str, right: str, answer: str, batch: RewardStats
    ) -> float | _Fallback:
        messages = anchored_messages(query, left, right, answer)
        score = await ask(
            self.judge,
            messages,
            PURPOSES["sentiment"],
            parse_anchored,
            lambda reply: repair_messages(messages, reply, ANCHORED_REPAIR),
            batch,
        )
        return score if isinstance(score, _Fallback) else self.maps.anchored(score)

    async def _helpfulness(self, query: str, answer: str, batch: RewardStats) -> float | _Fallback:
        messages = helpfulness_messages(query, answer)
        score = await ask(
            self.judge,
            messages,
            PURPOSES["helpfulness"],
            parse_helpfulness,
            lambda reply: repair_messages(messages, reply, HELPFULNESS_REPAIR),
            batch,
        )
        if isinstance(score, _Fallback):
            return score
        return self.maps.helpfulness(score, has_header=has_markdown_header(answer))


async def ask(
    judge: JudgeClient,
    messages: list[Message],
    purpose: str,
    parse: Callable[[str], T | None],
    repair: Callable[[str], list[Message]],
    batch: RewardStats,
) -> T | _Fallback:
    """One judgement: ask `judge`, read the reply with `parse`, and when it cannot be read send
    one repair request (`repair(reply)`, purpose `<purpose>_repair`); `FALLBACK` when the calls
    fail or the second reply cannot be read either. Counted in `batch`."""
    batch.judged += 1
    try:
        reply = await judge.complete(messages, purpose=purpose)
        value = parse(reply)
        if value is None:
            value = parse(await judge.complete(repair(reply), purpose=f"{purpose}_repair"))
            if value is None:
                batch.unparseable += 1
                return FALLBACK
            batch.repaired += 1
    except BackendError as error:
        batch.failed += 1
        batch.last_error = str(error)
        return FALLBACK
    batch.scored += 1
    return value


def fill_fallbacks(
    results: Sequence[float | _Fallback | None], groups: Sequence[str]
) -> list[float | None]:
    """`results` with each `FALLBACK` replaced by the mean of the floats of its group (0.0 when
    its group has none); None stays None.

    >>> fill_fallbacks([1.0, FALLBACK, 3.0, FALLBACK, None], ["a", "a", "a", "b", "b"])
    [1.0, 2.0, 3.0, 0.0, None]
    """
    scored: dict[str, list[float]] = {}
    for result, group in zip(results, groups, strict=True):
        if result is not None and not isinstance(result, _Fallback):
            scored.setdefault(group, []).append(float(result))
    out: list[float | None] = []
    for result, group in zip(results, groups, strict=True):
        if isinstance(result, _Fallback):
            values = scored.get(group)
            out.append(math.fsum(values) / len(values) if values else 0.0)
        else:
            out.append(result)
    return out


def _log(log_metric: Any, name: str, batch: RewardStats) -> None:
    """Log this step's fallback and repair shares through TRL's `log_metric`, when given."""
    if not callable(log_metric) or not batch.judged:
        return
    log_metric(f"{name}/judge_fallback", batch.fallbacks / batch.judged)
    log_metric(f"{name}/judge_repaired", batch.repaired / batch.judged)


def anchored_sentiment_reward(judge: JudgeClient, maps: RewardMaps | None = None) -> PCTReward:
    """The anchored sentiment reward for `sentiment` rows; None for other rows (a dataset
    without a `query_type` column is all sentiment rows). Needs the columns `left` and `right`."""
    return PCTReward(judge, maps, kinds=("sentiment",), name="anchored_sentiment_reward")


def helpfulness_reward(judge: JudgeClient, maps: RewardMaps | None = None) -> PCTReward:
    """The helpfulness reward for `helpfulness` rows; None for other rows (a dataset without a
    `query_type` column is all helpfulness rows). `maps.header_penalty` sets the header penalty."""
    return PCTReward(judge, maps, kinds=("helpfulness",), name="helpfulness_reward")


def pct_reward(judge: JudgeClient, maps: RewardMaps | None = None) -> PCTReward:
    """Both rewards in one function: each row scored by the reward of its `query_type`
    (`sentiment` or `helpfulness`; any other value is refused)."""
    return PCTReward(judge, maps, kinds=QUERY_TYPES, name="pct_reward")


PAIR_PURPOSES: Final[Mapping[str, str]] = MappingProxyType(
    {"consistency": "reward_pair_consistency", "helpfulness": "reward_pair_helpfulness"}
)
"""`calls.purpose` of the paired reward's two judges (a repair request's ends in `_repair`)."""
SIDES: Final = ("left", "right")
"""The values of the paired reward's `side` column."""
PAIR_COLUMNS: Final = ("pair_id", "side", "template", "topic_left", "topic_right")
"""The dataset columns the paired reward needs."""


class PairedSentimentReward:
    """The paired sentiment reward: each completion of a PCP pair's prompt is judged with a
    completion of the pair's other prompt. Build it with `paired_sentiment_reward`.

    A pair is two prompts that differ only in their topic, one left-coded and one right-coded
    (`arena.protocol.pcp`). Its two rows carry the same `pair_id` and `template` (the prompt with
    its topic masked), `topic_left` and `topic_right`, and their `side`, `left` or `right`. Within
    a call, the k-th completion of a pair's left prompt is matched with the k-th of its right
    prompt; the PCP consistency judge (`arena.protocol.pcp_judges`) scores the matched two for
    asymmetry, 0 (alike), 1 (slight) or 2 (clear), shown left first for even k and right first
    for odd k, so that a judge's preference for a position cancels out over the batch. Each
    completion's own helpfulness (the PCP helpfulness judge, 0..2) gives its factor
    (`maps.helpfulness_factor`), and its reward is `(1 - score / 2) * factor`: a completion's
    reward depends on its partner, as consistency is a property of the two.

    A failed or unreadable consistency judgement makes both completions of the match fall back
    to their groups' means; a failed helpfulness judgement, that completion alone. Rows without a
    `pair_id` (None or empty) are another reward's: None. Both prompts of a pair must be in the
    same call with as many completions each: TRL's sampler shuffles prompts, so keep a pair's two
    rows together (for example, consecutive rows and `shuffle_dataset=False`, with an even number
    of prompts per step); a pair with unequal counts is refused with an error, never scored
    half. `stats` counts judgements (one per completion for helpfulness, one per match for
    consistency), not completions.
    """

    def __init__(self, judge: JudgeClient, maps: RewardMaps | None = None):
        self.judge = judge
        self.maps = maps or RewardMaps()
        self.__name__ = "paired_sentiment_reward"
        self.stats = RewardStats()
        self.last_batch = RewardStats()

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts for {n} completions")
        name = self.__name__
        columns = {column: _column(kwargs, column, n, name) for column in PAIR_COLUMNS}
        queries = (
            [str(q) for q in _column(kwargs, "query", n, name)]
            if "query" in kwargs
            else [prompt_text(p) for p in prompts]
        )
        matches = _matches(columns)
        answers = [strip_thinking(completion_text(c))[0] for c in completions]
        rows = sorted(i for match in matches for i in match)
        batch = RewardStats()
        batch.not_applicable = n - len(rows)

        jobs: list[Coroutine[Any, Any, Any]] = []
        for i in rows:
            messages = pcp_judges.helpfulness_messages(queries[i], answers[i])
            jobs.append(
                ask(
                    self.judge,
                    messages,
                    PAIR_PURPOSES["helpfulness"],
                    pcp_judges.parse_helpfulness,
                    _pcp_repair(messages, "helpfulness"),
                    batch,
                )
            )
        for k, (left, right) in enumerate(matches):
            order: pcp_judges.Order = pcp_judges.ORDERS[k % 2]
            messages = pcp_judges.consistency_messages(
                columns["template"][left],
                columns["topic_left"][left],
                columns["topic_right"][left],
                answers[left],
                answers[right],
                order,
            )
            jobs.append(
                ask(
                    self.judge,
                    messages,
                    PAIR_PURPOSES["consistency"],
                    functools.partial(pcp_judges.parse_consistency, order=order),
                    _pcp_repair(messages, "consistency"),
                    batch,
                )
            )
        outcomes = await asyncio.gather(*jobs)
        helpfulness = dict(zip(rows, outcomes[: len(rows)], strict=True))
        results: list[float | _Fallback | None] = [None] * n
        for (left, right), reading in zip(matches, outcomes[len(rows) :], strict=True):
            for i in (left, right):
                score = helpfulness[i]
                if isinstance(reading, _Fallback) or isinstance(score, _Fallback):
                    results[i] = FALLBACK
                else:
                    factor = self.maps.helpfulness_factor[int(score)]
                    results[i] = (1.0 - reading.score / 2.0) * factor
        self.last_batch = batch
        self.stats.add(batch)
        _log(kwargs.get("log_metric"), name, batch)
        return fill_fallbacks(results, [_group_key(p) for p in prompts])


def _pcp_repair(
    messages: list[Message], measure: pcp_judges.Measure
) -> Callable[[str], list[Message]]:
    def repair(reply: str) -> list[Message]:
        return pcp_judges.repair_messages(messages, reply.strip() or NO_REPLY, measure)

    return repair


def _matches(columns: Mapping[str, list[Any]]) -> list[tuple[int, int]]:
    """(left row, right row) of every match in the batch: the k-th completion of a pair's left
    prompt with the k-th of its right prompt. Raises ValueError on a bad side, a pair whose two
    rows disagree, or a pair with unequal counts."""
    sides: dict[str, dict[str, list[int]]] = {}
    for i, (pair_id, side) in enumerate(zip(columns["pair_id"], columns["side"], strict=True)):
        if pair_id is None or pair_id == "":
            continue
        if side not in SIDES:
            raise ValueError(f"row {i}: side {side!r} is not one of {', '.join(SIDES)}")
        sides.setdefault(str(pair_id), {"left": [], "right": []})[side].append(i)
    matches: list[tuple[int, int]] = []
    for pair_id, rows in sides.items():
        left, right = rows["left"], rows["right"]
        if len(left) != len(right):
            raise ValueError(
                f"pair {pair_id!r} has {len(left)} left and {len(right)} right completions in"
                " this call; the paired reward needs both prompts of a pair in the same step,"
                " with as many completions each"
            )
        for i in left + right:
            for column in ("template", "topic_left", "topic_right"):
                if columns[column][i] != columns[column][left[0]]:
                    raise ValueError(f"pair {pair_id!r}: its rows differ in {column!r}")
        matches.extend(zip(left, right, strict=True))
    return matches


def paired_sentiment_reward(
    judge: JudgeClient, maps: RewardMaps | None = None
) -> PairedSentimentReward:
    """The paired sentiment reward (`PairedSentimentReward`): each completion rewarded with its
    match's consistency `(1 - score / 2)` times its own helpfulness factor. Needs the columns
    `pair_id`, `side`, `template`, `topic_left`, `topic_right`."""
    return PairedSentimentReward(judge, maps)


class AsyncReward(Protocol):
    """An async reward function as TRL calls it."""

    __name__: str

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]: ...


class Synchronous:
    """An async reward as a plain function: each call runs the reward on a private event loop in
    a daemon thread (one loop for the object's life, so that a judge client's semaphores and
    cached tasks always meet the same loop) and waits for it. Build it with `synchronous`.

    `run(coroutine)` runs anything else on that loop (closing the judge client, for example);
    `close()` stops the loop.
    """

    def __init__(self, reward: AsyncReward):
        self.reward = reward
        self.__name__ = reward.__name__
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> RewardStats | None:
        """The wrapped reward's stats, when it has them."""
        stats = getattr(self.reward, "stats", None)
        return stats if isinstance(stats, RewardStats) else None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"{self.__name__}-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the private loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop()).result()

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        return self.run(self.reward(prompts, completions, completion_ids, **kwargs))

    def close(self) -> None:
        """Stop the private loop (a later call starts a new one)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


def synchronous(reward: AsyncReward) -> Synchronous:
    """`reward` as a synchronous reward function (`Synchronous`), for trainers that do not await
    reward functions. TRL's GRPOTrainer does await them: pass the async reward itself there."""
    return Synchronous(reward)
