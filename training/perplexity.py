"""The perplexity of held-out chosen texts, which the safety stop watches (training/callbacks.py).

PERSUADE stopped DPO when the perplexity of held-out chosen texts passed 10.0 (it had started at
4.68): DPO can drive down the likelihood of both texts of a pair while their margin grows, and
the model then writes worse text even as its reward accuracy looks perfect.

The texts are the test split's (prompt, chosen) pairs, distinct ones only (the cross product of
`arena pairs` repeats every chosen turn), a seeded choice of at most `limit`; for SFT, the test
split's demonstrations, the prompt being every message but the last and the reply the last
(the winning turn). Each is tokenised
as TRL tokenises it for DPO: the prompt through the chat template with the generation prompt,
the prompt and the chosen reply together, the reply's tokens being those after the common
prefix; its end cut off at `max_length` tokens, as TRL's `keep_start` does. The perplexity is

    exp( sum of -log p(reply token | everything before it) / number of reply tokens )

over all the texts together (a token-weighted mean, so long replies count for more), computed on
the model as it is, adapters on, in eval mode (no dropout) and without gradients.

    >>> round(perplexity_from(nll_sum=2 * 3.0, tokens=3), 4)  # mean NLL 2.0 nats
    7.3891

Simplified on purpose: the logits of a batch are materialised whole (batch x length x
vocabulary), so `batch_size` is kept small; conversational rows only (what `arena pairs` writes).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Encoded:
    """One held-out text: the token ids of prompt + reply, and where the reply starts."""

    ids: list[int]
    reply_start: int


def perplexity_from(nll_sum: float, tokens: int) -> float:
    """exp(mean negative log-likelihood); infinity when it overflows, NaN without tokens."""
    if tokens <= 0:
        return math.nan
    mean = nll_sum / tokens
    return math.exp(mean) if mean < 700 else math.inf


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _chat_ids(tokenizer: Any, messages: list[Mapping[str, str]], generation: bool) -> list[int]:
    text = tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=generation
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def held_out_texts(
    rows: Iterable[Mapping[str, Any]],
    tokenizer: Any,
    *,
    limit: int,
    max_length: int | None,
    seed: int,
    reply: str = "chosen",
) -> list[Encoded]:
    """At most `limit` distinct (prompt, reply) texts of `rows`, a seeded choice, encoded; the
    reply is the `reply` column (`chosen` of a pair, `completion` of a demonstration)."""
    seen: dict[str, tuple[list[Mapping[str, str]], list[Mapping[str, str]]]] = {}
    for row in rows:
        prompt, chosen = list(row["prompt"]), list(row[reply])
        key = repr((prompt, chosen))
        seen.setdefault(key, (prompt, chosen))
    keys = sorted(seen)
    random.Random(seed).shuffle(keys)
    texts: list[Encoded] = []
    for key in keys:
        if len(texts) >= limit:
            break
        prompt, chosen = seen[key]
        prompt_ids = _chat_ids(tokenizer, prompt, generation=True)
        full = _chat_ids(tokenizer, prompt + chosen, generation=False)
        start = _common_prefix(prompt_ids, full)
        if max_length is not None:
            full = full[:max_length]
        if start < len(full):  # a prompt that fills max_length leaves nothing to score
            texts.append(Encoded(full, start))
    return texts


def perplexity(model: Any, texts: Sequence[Encoded], *, batch_size: int, pad_id: int) -> float:
    """The perplexity of the replies in `texts` under `model` (see the module doc)."""
    import torch

    if not texts:
        return math.nan
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll_sum, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for first in range(0, len(texts), batch_size):
                batch = texts[first : first + batch_size]
                length = max(len(t.ids) for t in batch)
                input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
                attention = torch.zeros((len(batch), length), dtype=torch.long)
                labels = torch.full((len(batch), length), -100, dtype=torch.long)
                for i, text in enumerate(batch):
                    ids = torch.tensor(text.ids, dtype=torch.long)
                    input_ids[i, : len(ids)] = ids
                    attention[i, : len(ids)] = 1
                    labels[i, text.reply_start : len(ids)] = ids[text.reply_start :]
                logits = model(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device)
                ).logits
                target = labels[:, 1:].to(device)
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().flatten(0, 1),
                    target.flatten(),
                    ignore_index=-100,
                    reduction="sum",
                )
                nll_sum += float(nll.item())
                tokens += int((target != -100).sum().item())
    finally:
        if was_training:
            model.train()
    return perplexity_from(nll_sum, tokens)
