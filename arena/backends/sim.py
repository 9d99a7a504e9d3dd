"""Simulated models with a known skill, and a simulated judge that reads only the transcript.

A simulated debater writes turns made of claims, each tagged with an evidence strength drawn
around its latent `skill`: `Claim 2: ... [strength +1.23]`. Anyone reading the transcript can
measure a side's quality (the mean strength of its claims). The simulated judge does exactly that:
it splits the transcript into FOR and AGAINST turns (it never sees model names), compares the two
mean strengths, adds its side bias and logistic noise, and answers in JSON like an LLM judge.

With the default claim noise close to zero, the probability that A beats B is
sigmoid((skill_A - skill_B + bias) / noise): a Bradley-Terry model whose true strengths are
skill / noise, which is what rating methods are validated against.

Asked for logprobs (a judge with `verdict: logprob`), it answers with its P(FOR) as the first
token's alternatives instead of drawing a winner.

Shown a neutral-label transcript (a judge with `swap_check`: Debater A and Debater B instead of FOR
and AGAINST), it compares the two debaters the same way and answers A, B or TIE (P(A) as
logprobs). FOR opens every debate, so it knows which debater argued FOR (the speaker of turn 1) and
applies its side bias to that one; its `letter_bias` favours whoever is called A. An unbiased judge
therefore gives the same verdict distribution whichever letter FOR gets, and a letter-biased one
does not: the label bias that swap-check judging measures.

Asked a BBQ question (the BBQ task sets `arena.protocol.bbq.ANSWER_KEY` around the call), a
simulated model answers by its `bbq` profile (`SimBBQProfile`; the defaults when it has none): on
an ambiguous item it says "unknown" with probability `p_unknown_ambig`, and otherwise names the
biased person with probability `p_biased_commit`; on a disambiguated item it is right with
probability `acc_disambig`, and a wrong answer is "unknown" with probability
`p_unknown_disambig_error`, else the other person; with probability `p_unparseable` it says
something no letter can be read from. The reply takes one of a few forms (`B`, `Answer: B`, ...),
and asked for logprobs it gives the letters' probabilities as the first token's alternatives. The
draws depend on (model name, item, sampling seed) only, so a report can be checked against the
profile's true values (tests/test_bbq_run.py derives them). The key comes through a context
variable rather than the prompt because the truth of an item is not in what a model is shown.

Everything is deterministic given the tournament seed and the request: the random draws for a call
come from a hash of (seed, model name, messages). Injected failures are drawn per attempt, so a
retried call can succeed.

Simplified on purpose: the prose is a fixed vocabulary; only the strength tags carry information.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from arena.backends.base import (
    STRICT_CONFIG,
    Backend,
    BackendSpec,
    Completion,
    GenerateSettings,
    Message,
)
from arena.backends.sim_politics import SimPoliticsProfile, judge_reply, political_answer
from arena.core.errors import BackendError
from arena.core.ids import content_id, request_hash
from arena.protocol.bbq import ANSWER_KEY, AnswerKey
from arena.protocol.bbq import LETTERS as BBQ_LETTERS
from arena.protocol.pcp import SIDE
from arena.protocol.pcp_judges import measure_of
from arena.protocol.transcript import LETTERS, debater_label, split_transcript

STRENGTH_TAG = re.compile(r"\[strength ([+-]?\d+(?:\.\d+)?)\]")

_OPENERS = (
    "The record on this question",
    "The strongest evidence we have",
    "A careful look at the costs",
    "Experience from comparable cases",
    "The people most affected",
    "Long-run consequences",
    "The principle at stake",
    "Independent studies",
)
_VERBS = ("supports", "points towards", "is consistent with", "bears out", "underlines")
_ENDINGS = (
    "our reading of the motion",
    "the position we defend",
    "the case we have made",
    "what we argued in our opening",
    "the conclusion the other side resists",
)


class SimFailures(BaseModel):
    """Per-call probabilities of injected failures (drawn independently for every attempt)."""

    model_config = STRICT_CONFIG

    rate_limit: float = Field(0.0, ge=0, le=1)
    """429-like failure, retryable (with `retry_after_s` when set)."""
    server_error: float = Field(0.0, ge=0, le=1)
    """500-like failure, retryable."""
    timeout: float = Field(0.0, ge=0, le=1)
    """A call that times out, retryable."""
    malformed: float = Field(0.0, ge=0, le=1)
    """A reply the client cannot parse, retryable; a judge instead replies with prose, not JSON."""
    bad_request: float = Field(0.0, ge=0, le=1)
    """A deterministic 400-like failure: not retryable, so it fails the debate."""
    retry_after_s: float | None = Field(None, ge=0)
    """The Retry-After delay that rate limits announce."""

    @model_validator(mode="after")
    def _total_at_most_one(self) -> SimFailures:
        if self.total() > 1:
            raise ValueError("failure rates add up to more than 1")
        return self

    def total(self) -> float:
        return (
            self.rate_limit + self.server_error + self.timeout + self.malformed + self.bad_request
        )


class _SimCommon(BackendSpec):
    backend: Literal["sim"]
    latency_s: float = Field(0.0, ge=0)
    """Fixed delay per call, in seconds."""
    jitter_s: float = Field(0.0, ge=0)
    """Extra uniform random delay in [0, jitter_s)."""
    failures: SimFailures = Field(default_factory=SimFailures)
    """Injected failures."""
    cost_per_1k_tokens: float = Field(0.0, ge=0)
    """Simulated price, to exercise cost accounting."""


class SimBBQProfile(BaseModel):
    """How a simulated model answers BBQ questions (`bbq:` on a `backend: sim` entry).

    Its answer to an item, with u = `p_unparseable`: unreadable with probability u; else, on an
    ambiguous item, "unknown" with probability `p_unknown_ambig`, the biased person with
    (1 - p_unknown_ambig) * p_biased_commit and the other person with the rest; on a
    disambiguated item the gold person with `acc_disambig`, "unknown" with (1 - acc_disambig) *
    p_unknown_disambig_error and the other person with the rest (all times 1 - u). On an item
    without a target the two people share a committed answer evenly.
    """

    model_config = STRICT_CONFIG

    p_unknown_ambig: float = Field(0.5, ge=0, le=1)
    """Probability of answering "unknown" on an ambiguous item (the right answer there)."""
    acc_disambig: float = Field(0.8, ge=0, le=1)
    """Probability of naming the right person on a disambiguated item."""
    p_biased_commit: float = Field(0.5, ge=0, le=1)
    """On an ambiguous item, the probability that an answer naming a person names the biased
    one (0.5: no lean)."""
    p_unknown_disambig_error: float = Field(0.5, ge=0, le=1)
    """On a disambiguated item, the probability that a wrong answer is "unknown" rather than the
    other person."""
    p_unparseable: float = Field(0.0, ge=0, le=1)
    """Probability of a reply in which no answer letter can be read."""

    def probabilities(self, key: AnswerKey) -> dict[str, float]:
        """Each letter's probability for the item `key` (they add up to 1 - p_unparseable).

        >>> key = AnswerKey("Age:0", True, "C", "C", "A")
        >>> SimBBQProfile(p_unknown_ambig=0.6, p_biased_commit=0.75).probabilities(key)
        {'A': 0.30000000000000004, 'B': 0.1, 'C': 0.6}
        """
        probs = dict.fromkeys(BBQ_LETTERS, 0.0)
        people = [x for x in BBQ_LETTERS if x != key.unknown_letter]
        if key.ambiguous:
            probs[key.unknown_letter] = self.p_unknown_ambig
            commit = 1.0 - self.p_unknown_ambig
            lean = self.p_biased_commit if key.biased_letter in people else 0.5
            first = key.biased_letter if key.biased_letter in people else people[0]
            other = next(x for x in people if x != first)
            probs[first] += commit * lean
            probs[other] += commit * (1.0 - lean)
        elif key.gold_letter == key.unknown_letter:  # not in BBQ; kept well defined
            probs[key.gold_letter] = self.acc_disambig
            for person in people:
                probs[person] += (1.0 - self.acc_disambig) / 2
        else:
            wrong = 1.0 - self.acc_disambig
            other = next(x for x in people if x != key.gold_letter)
            probs[key.gold_letter] = self.acc_disambig
            probs[key.unknown_letter] = wrong * self.p_unknown_disambig_error
            probs[other] = wrong * (1.0 - self.p_unknown_disambig_error)
        readable = 1.0 - self.p_unparseable
        return {letter: p * readable for letter, p in probs.items()}


BBQ_FORMS: tuple[str, ...] = ("{}", "Answer: {}", "The answer is ({}).", "{}.")
"""The forms a simulated BBQ reply takes (the letter in place of {})."""
BBQ_UNREADABLE: tuple[str, ...] = (
    "I would rather not guess.",
    "It is hard to say from this passage alone.",
    "Both seem possible to me.",
)
"""Simulated replies in which no answer letter can be read."""


class SimSpec(_SimCommon):
    """A simulated debater (`backend: sim` under `models:`)."""

    skill: float = 0.0
    """Latent skill, in log-odds units against a skill-0 model under a judge with noise 1."""
    claims: int = Field(4, ge=1, le=50)
    """Claims per turn."""
    claim_noise: float = Field(0.05, ge=0)
    """Standard deviation of each claim's strength around the skill."""
    think_rate: float = Field(0.0, ge=0, le=1)
    """Probability that a turn starts with a <think> block (to exercise think stripping)."""
    bbq: SimBBQProfile | None = None
    """How it answers BBQ questions (`arena bbq run`); the profile's defaults when unset."""
    politics: SimPoliticsProfile | None = None
    """How it answers paired political prompts (`arena pcp run`); even and never refusing when
    unset."""

    OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("bbq", "politics")
    """Left out of a stored spec while unset, so that a model defined before it existed is
    stored, and resumed, as it was (`arena.runs`)."""

    def model_id(self) -> str | None:
        return f"sim/skill={self.skill:g}"


class SimJudgeSpec(_SimCommon):
    """A simulated judge (`backend: sim` under `judges:`)."""

    noise: float = Field(1.0, ge=0)
    """Scale of the logistic noise on the strength difference (0: the stronger side wins)."""
    side_bias: float = 0.0
    """Added to FOR's advantage: > 0 favours FOR, < 0 favours AGAINST."""
    tie_band: float = Field(0.0, ge=0)
    """A noisy difference within +/- tie_band is judged a tie."""
    letter_bias: float = 0.0
    """With neutral labels (a judge with `swap_check`), added to Debater A's advantage, in the
    units of `side_bias`: > 0 favours whoever is called A, < 0 whoever is called B."""
    order_bias: float = 0.0
    """Judging a PCP pair (`arena.backends.sim_politics`), added to the first-shown response's
    favourability: > 0 favours whichever response is shown first."""

    OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("order_bias",)

    def model_id(self) -> str | None:
        base = f"sim-judge/noise={self.noise:g},bias={self.side_bias:g}"
        # Only when set, so that the ids of judges defined before it existed stay the same.
        if self.letter_bias:
            base = f"{base},letter_bias={self.letter_bias:g}"
        return f"{base},order_bias={self.order_bias:g}" if self.order_bias else base


def _pick_failure(rng: random.Random, failures: SimFailures) -> str | None:
    draw = rng.random()
    for kind in ("rate_limit", "server_error", "timeout", "malformed", "bad_request"):
        rate: float = getattr(failures, kind)
        if draw < rate:
            return kind
        draw -= rate
    return None


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _SimBackend(Backend):
    spec: _SimCommon

    def __init__(self, spec: _SimCommon):
        super().__init__(spec)
        self.spec = spec
        self._attempts: dict[str, int] = {}

    def _rngs(
        self, messages: list[Message], settings: GenerateSettings
    ) -> tuple[random.Random, random.Random, str]:
        # The system prompt (motion, side) and the last message (the turn, the opponent's latest
        # text) identify the context well enough, and hashing two messages beats hashing all.
        ends = [m.as_dict() for m in (messages[0], messages[-1])]
        key = request_hash(self.name, ends, {"seed": settings.seed, "n": len(messages)})
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        content_rng = random.Random(int(key, 16))
        fault_rng = random.Random(int(content_id(key, attempt), 16))
        return content_rng, fault_rng, key

    async def _delay_and_fail(self, fault_rng: random.Random, key: str) -> str | None:
        spec = self.spec
        delay = spec.latency_s + (spec.jitter_s * fault_rng.random() if spec.jitter_s else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        failure = _pick_failure(fault_rng, spec.failures) if spec.failures.total() else None
        if failure is None or failure == "malformed":
            return failure
        if failure == "rate_limit":
            raise BackendError(
                "simulated rate limit (429)",
                kind="rate_limit",
                retry_after=spec.failures.retry_after_s,
            )
        if failure == "server_error":
            raise BackendError("simulated server error (500)", kind="server")
        if failure == "timeout":
            raise BackendError("simulated timeout", kind="timeout")
        self._attempts.pop(key, None)
        raise BackendError("simulated bad request (400)", kind="bad_request")

    def _completion(self, messages: list[Message], text: str, key: str) -> Completion:
        self._attempts.pop(key, None)
        prompt_tokens = sum(_approx_tokens(m.content) for m in messages)
        completion_tokens = _approx_tokens(text)
        cost = (prompt_tokens + completion_tokens) / 1000 * self.spec.cost_per_1k_tokens
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            finish_reason="stop",
        )


class SimBackend(_SimBackend):
    """Writes debate turns whose claims carry the model's skill."""

    spec: SimSpec

    def __init__(self, spec: SimSpec):
        super().__init__(spec)
        self.spec = spec

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        rng, fault_rng, key = self._rngs(messages, settings)
        failure = await self._delay_and_fail(fault_rng, key)
        if failure == "malformed":
            raise BackendError("simulated malformed response body", kind="malformed")
        answer_key = ANSWER_KEY.get()
        if answer_key is not None:
            return self._bbq_answer(messages, settings, answer_key, key)
        side = SIDE.get()
        if side is not None:
            profile = self.spec.politics or SimPoliticsProfile()
            return self._completion(messages, political_answer(rng, side, profile), key)
        spec = self.spec
        parts: list[str] = []
        if spec.think_rate and rng.random() < spec.think_rate:
            parts.append("<think>Which of their claims is weakest? Start there.</think>")
        for i in range(1, spec.claims + 1):
            strength = spec.skill + rng.gauss(0.0, spec.claim_noise)
            parts.append(
                f"Claim {i}: {rng.choice(_OPENERS)} {rng.choice(_VERBS)} "
                f"{rng.choice(_ENDINGS)} [strength {strength:+.3f}]."
            )
        return self._completion(messages, " ".join(parts), key)

    def _bbq_answer(
        self, messages: list[Message], settings: GenerateSettings, answer: AnswerKey, key: str
    ) -> Completion:
        """A BBQ reply drawn from the profile; the draws depend on (name, item, seed) only."""
        profile = self.spec.bbq or SimBBQProfile()
        probs = profile.probabilities(answer)
        rng = random.Random(int(content_id("bbq", self.name, answer.item_id, settings.seed), 16))
        draw, form = rng.random(), rng.random()
        chosen: str | None = None
        for letter in BBQ_LETTERS:
            if draw < probs[letter]:
                chosen = letter
                break
            draw -= probs[letter]
        if chosen is None:
            text = BBQ_UNREADABLE[int(form * len(BBQ_UNREADABLE))]
        else:
            text = BBQ_FORMS[int(form * len(BBQ_FORMS))].format(chosen)
        completion = self._completion(messages, text, key)
        if settings.top_logprobs:
            alternatives = [(x, math.log(p)) for x, p in probs.items() if p > 0]
            if profile.p_unparseable > 0:
                alternatives.append(("I", math.log(profile.p_unparseable)))
            alternatives.sort(key=lambda item: -item[1])
            completion.top_logprobs = alternatives[: settings.top_logprobs]
        return completion


_NEUTRAL = tuple(debater_label(letter) for letter in LETTERS)


def _means(turns: list[tuple[int, str, str]], speakers: tuple[str, ...]) -> list[float | None]:
    found: dict[str, list[float]] = {speaker: [] for speaker in speakers}
    for _, speaker, text in turns:
        if speaker in found:
            found[speaker].extend(float(x) for x in STRENGTH_TAG.findall(text))
    return [(sum(v) / len(v) if v else None) for v in found.values()]


def mean_strengths(transcript: str) -> dict[str, float | None]:
    """The mean claim strength of each side in a transcript (None if a side made no claim); of
    Debater A and Debater B instead in a neutral-label transcript."""
    turns = split_transcript(transcript)
    speakers = _NEUTRAL if turns and turns[0][1] in _NEUTRAL else ("FOR", "AGAINST")
    return dict(zip(speakers, _means(turns, speakers), strict=True))


def _signed(value: float | None) -> str:
    return f"{value if value is not None else float('nan'):+.2f}"


class SimJudgeBackend(_SimBackend):
    """Judges a transcript by the strengths its claims carry."""

    spec: SimJudgeSpec

    def __init__(self, spec: SimJudgeSpec):
        super().__init__(spec)
        self.spec = spec

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        rng, fault_rng, key = self._rngs(messages, settings)
        failure = await self._delay_and_fail(fault_rng, key)
        if failure == "malformed":
            text = "Both sides argued well, but I lean towards the stronger case overall."
            return self._completion(messages, text, key)
        prompt = "\n".join(m.content for m in messages if m.role == "user")
        spec = self.spec
        measure = measure_of(prompt)
        if measure is not None:
            text = judge_reply(measure, prompt, rng, spec.noise, spec.order_bias)
            return self._completion(messages, text, key)
        turns = split_transcript(prompt)
        if turns and turns[0][1] in _NEUTRAL:
            first, second = _NEUTRAL
            a_s, b_s = _means(turns, _NEUTRAL)
            # FOR opens every debate: whoever speaks first argued FOR, and gets the side bias.
            for_bias = spec.side_bias if turns[0][1] == first else -spec.side_bias
            diff = (a_s or 0.0) - (b_s or 0.0) + for_bias + spec.letter_bias
            answers = LETTERS
            rationale = f"Mean evidence strength {first} {_signed(a_s)}, {second} {_signed(b_s)}."
        else:
            for_s, against_s = _means(turns, ("FOR", "AGAINST"))
            diff = (for_s or 0.0) - (against_s or 0.0) + spec.side_bias
            answers = ("FOR", "AGAINST")
            rationale = (
                f"Mean evidence strength FOR {_signed(for_s)}, AGAINST {_signed(against_s)}."
            )
        if settings.top_logprobs:
            # A logprob judge: report the probability that the noisy judge would name the first.
            scaled = diff / spec.noise if spec.noise > 0 else math.copysign(50.0, diff)
            p_first = min(max(1 / (1 + math.exp(-max(min(scaled, 50.0), -50.0))), 1e-12), 1 - 1e-12)
            alternatives = sorted(
                [(answers[0], math.log(p_first)), (answers[1], math.log(1 - p_first))],
                key=lambda item: -item[1],
            )
            completion = self._completion(messages, alternatives[0][0], key)
            completion.top_logprobs = alternatives
            return completion
        if spec.noise > 0:
            u = min(max(rng.random(), 1e-12), 1 - 1e-12)
            diff += spec.noise * math.log(u / (1 - u))  # logistic(0, noise) draw
        winner = "TIE" if abs(diff) <= spec.tie_band else (answers[0] if diff > 0 else answers[1])
        text = json.dumps({"winner": winner, "rationale": rationale})
        return self._completion(messages, text, key)
