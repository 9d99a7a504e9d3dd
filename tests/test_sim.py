"""Simulated models: deterministic, text that carries skill, a judge that reads only the text."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from arena.backends import GenerateSettings, Message
from arena.backends.scripted import ScriptedBackend, ScriptedSpec
from arena.backends.sim import (
    SimBackend,
    SimFailures,
    SimJudgeBackend,
    SimJudgeSpec,
    SimSpec,
    mean_strengths,
)
from arena.core.errors import BackendError
from arena.judges.parse import prob_letter_a
from arena.protocol.debate import Transcript

SETTINGS = GenerateSettings(max_tokens=200, seed=7)


def _turn(backend: SimBackend, prompt: str, settings: GenerateSettings = SETTINGS) -> str:
    return asyncio.run(backend.generate([Message("user", prompt)], settings)).text


def test_same_request_same_text_and_seed_changes_it() -> None:
    backend = SimBackend(SimSpec(name="a", backend="sim", skill=1.0))
    assert _turn(backend, "motion x") == _turn(backend, "motion x")
    assert _turn(backend, "motion x") != _turn(backend, "motion y")
    other_seed = GenerateSettings(max_tokens=200, seed=8)
    assert _turn(backend, "motion x") != _turn(backend, "motion x", other_seed)


def test_text_carries_skill() -> None:
    strong = SimBackend(SimSpec(name="s", backend="sim", skill=2.0, claims=6))
    weak = SimBackend(SimSpec(name="w", backend="sim", skill=-2.0, claims=6))
    transcript = Transcript("m", 4, 200)
    for index in range(1, 5):
        backend = strong if index % 2 else weak
        transcript.add(index, _turn(backend, f"turn {index}"))
    means = mean_strengths(transcript.judge_messages()[-1].content)
    assert means["FOR"] == pytest.approx(2.0, abs=0.1)
    assert means["AGAINST"] == pytest.approx(-2.0, abs=0.1)


def _verdict(judge: SimJudgeBackend, transcript: Transcript) -> str:
    completion = asyncio.run(judge.generate(transcript.judge_messages(), SETTINGS))
    return str(json.loads(completion.text)["winner"])


def _debate(for_skill: float, against_skill: float, motion: str) -> Transcript:
    a = SimBackend(SimSpec(name="x", backend="sim", skill=for_skill))
    b = SimBackend(SimSpec(name="y", backend="sim", skill=against_skill))
    transcript = Transcript(motion, 6, 200)
    for index in range(1, 7):
        transcript.add(index, _turn(a if index % 2 else b, f"{motion} {index}"))
    return transcript


def test_noiseless_judge_picks_the_stronger_side_whatever_the_side() -> None:
    judge = SimJudgeBackend(SimJudgeSpec(name="j", backend="sim", noise=0.0))
    assert _verdict(judge, _debate(1.0, 0.0, "m1")) == "FOR"
    assert _verdict(judge, _debate(0.0, 1.0, "m1")) == "AGAINST"


def test_noisy_judge_follows_bradley_terry_and_side_bias() -> None:
    judge = SimJudgeBackend(SimJudgeSpec(name="j", backend="sim", noise=1.0))
    biased = SimJudgeBackend(SimJudgeSpec(name="b", backend="sim", noise=1.0, side_bias=1.0))
    wins = biased_wins = 0
    n = 300
    for i in range(n):
        transcript = _debate(1.0, 0.0, f"motion {i}")
        wins += _verdict(judge, transcript) == "FOR"
        biased_wins += _verdict(biased, _debate(0.0, 0.0, f"motion {i}")) == "FOR"
    # sigmoid(1) = 0.731 and sigmoid(1) again for equal skills with a FOR bias of 1
    assert 0.65 < wins / n < 0.81
    assert 0.65 < biased_wins / n < 0.81


def test_judge_reads_neutral_labels_and_a_letter_bias_favours_a() -> None:
    exact = SimJudgeBackend(SimJudgeSpec(name="e", backend="sim", noise=0.0))
    for letter, other in (("A", "B"), ("B", "A")):
        strong_for = exact.generate(
            _debate(1.0, 0.0, "m1").judge_messages(for_letter=letter), SETTINGS
        )
        strong_against = exact.generate(
            _debate(0.0, 1.0, "m1").judge_messages(for_letter=letter), SETTINGS
        )
        assert json.loads(asyncio.run(strong_for).text)["winner"] == letter
        assert json.loads(asyncio.run(strong_against).text)["winner"] == other
    # logprob: P(A) = sigmoid(advantage of A); a side bias follows FOR, a letter bias follows A
    logprobs = GenerateSettings(max_tokens=1, seed=7, top_logprobs=5)
    even = _debate(0.0, 0.0, "m2")
    cases = [
        ({}, "A", 0.0),
        ({"side_bias": 1.0}, "A", 1.0),
        ({"side_bias": 1.0}, "B", -1.0),
        ({"letter_bias": 1.0}, "A", 1.0),
        ({"letter_bias": 1.0}, "B", 1.0),
        ({"letter_bias": -0.5, "side_bias": 1.0}, "B", -1.5),
    ]
    for options, letter, advantage in cases:
        judge = SimJudgeBackend(SimJudgeSpec(name="l", backend="sim", noise=1.0, **options))
        completion = asyncio.run(judge.generate(even.judge_messages(True, letter), logprobs))
        assert completion.text in ("A", "B")
        p_a = prob_letter_a(completion.top_logprobs or [])
        assert p_a == pytest.approx(1 / (1 + math.exp(-advantage)), abs=0.03), (options, letter)
    # the letter bias is part of the judge's identity only when set
    assert SimJudgeSpec(name="l", backend="sim").model_id() == "sim-judge/noise=1,bias=0"
    assert (
        SimJudgeSpec(name="l", backend="sim", letter_bias=0.5)
        .model_id()
        .endswith(",letter_bias=0.5")
    )


def test_injected_failures_are_per_attempt_and_classified() -> None:
    spec = SimSpec(
        name="f",
        backend="sim",
        failures=SimFailures(rate_limit=0.25, server_error=0.25, timeout=0.2, retry_after_s=1.5),
    )
    backend = SimBackend(spec)
    kinds: dict[str, int] = {}
    attempts = 0
    for i in range(300):
        while True:  # each request tried again until it succeeds, as the engine would
            attempts += 1
            try:
                _turn(backend, f"request {i}")
                break
            except BackendError as error:
                assert error.retryable
                kinds[error.kind] = kinds.get(error.kind, 0) + 1
                if error.kind == "rate_limit":
                    assert error.retry_after == 1.5
    assert set(kinds) == {"rate_limit", "server", "timeout"}
    assert 0.25 < 300 / attempts < 0.36  # 30% of attempts succeed


def test_bad_request_is_not_retryable() -> None:
    backend = SimBackend(SimSpec(name="f", backend="sim", failures=SimFailures(bad_request=1.0)))
    with pytest.raises(BackendError) as info:
        _turn(backend, "x")
    assert not info.value.retryable and not backend.should_retry(info.value)


def test_scripted_replays_by_hash_and_logs(tmp_path: object) -> None:
    from pathlib import Path

    log = Path(str(tmp_path)) / "log.jsonl"
    spec = ScriptedSpec(
        name="s", backend="scripted", replies=["one", "two", "three"], log_file=str(log)
    )
    backend = ScriptedBackend(spec)
    first = [_turn(backend, f"p{i}") for i in range(6)]  # type: ignore[arg-type]
    again = [_turn(backend, f"p{i}") for i in range(6)]  # type: ignore[arg-type]
    assert first == again and set(first) <= {"one", "two", "three"}
    assert len(log.read_text().splitlines()) == 12
