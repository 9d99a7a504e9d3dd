"""One batched generate call of the `local` backend: chat template, left padding, per-row decoding.

`generate_batch` takes requests that share their stop sequences, renders each conversation with
the tokenizer's chat template (generation prompt added), pads them on the left into one tensor and
runs one `generate` call. Everything else is per row: its max tokens, and how it picks each token
(`RowDecoding`: temperature, top p, repetition penalty, n-gram ban, seed), so requests with
different decodings share one forward pass, which on a CPU costs little more than one alone.

Token choice: transformers' `generate` runs greedily, and a logits processor (`_RowDecoder`)
makes the choice for every row and hands back scores in which only the chosen token is finite,
so the greedy step takes exactly that token. Per row, in this order:

1. the repetition penalty, as vLLM and transformers define it: every token that occurs in the
   row's prompt or in what it generated so far has its logit divided by the penalty when
   positive, multiplied by it when negative (padding is no part of a prompt);
2. the n-gram ban (`no_repeat_ngram_size` n), as transformers defines it: a token that would
   make the row's last n tokens a sequence that its prompt or reply already holds is ruled out
   (padding is no part of a prompt), so a reply neither loops nor copies n tokens of its prompt;
3. a greedy row (temperature 0) takes the argmax; a sampled row divides by its temperature,
   keeps the smallest set of most likely tokens whose mass reaches its top p, and draws from
   them with its own random generator, seeded by its request's seed (a fresh random seed when it
   has none) together with its prompt.

So a row's text does not depend on which requests shared its batch, except through the rounding
of the batched computation; and a greedy row without a penalty or a ban takes the argmax that
plain greedy decoding takes. When every row is such a row, the processor is left out and
`generate` decodes greedily as it is.

The rest: each row is taken apart again (the tokens it generated, up to and including its
end-of-sequence token or its own max tokens; what follows is padding, because the batch runs
until its longest row ends), its text without special tokens and cut before a stop sequence, and
on request the top-k log-probabilities of its first token, read from the logits of the prompt's
last position (before any penalty or temperature) by a forward hook on the first (prefill) pass.

Runs in the batcher's worker thread; torch and transformers are imported here, never at module
level of anything the engine imports.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from arena.backends.base import Completion, GenerateSettings, Message
from arena.backends.local_model import LoadedModel
from arena.core.errors import BackendError

NUCLEUS_CANDIDATES = 256
"""How many of the most likely tokens a top-p row looks at first; only when their mass falls
short of its top p does it sort the whole vocabulary (measured on a shared CPU core: a sort of
SmolLM2's 49,152 probabilities took about 14 ms per row and step, the top 256 under 0.5 ms)."""


@dataclass(frozen=True)
class RowDecoding:
    """How one row of a batch picks its tokens, with the backend's defaults filled in."""

    temperature: float
    """0: greedy. Unset in the request: 1, as OpenAI-compatible servers take it."""
    top_p: float
    """Nucleus mass; 1 keeps every token."""
    repetition_penalty: float
    """1: none."""
    no_repeat_ngram_size: int
    """0: none; n: no n tokens in a row occur twice in the prompt and reply together."""
    seed: int | None
    """Seeds the row's own random generator; None: a fresh random seed."""

    def for_prompt(self, prompt_ids: Sequence[int]) -> RowDecoding:
        """This decoding with its seed mixed with the row's prompt (`stream_seed`)."""
        if self.seed is None:
            return self
        return replace(self, seed=stream_seed(self.seed, prompt_ids))

    @classmethod
    def of(cls, settings: GenerateSettings) -> RowDecoding:
        """A request's decoding: temperature 1, top p 1, no penalty and no ban where unset."""
        return cls(
            temperature=1.0 if settings.temperature is None else float(settings.temperature),
            top_p=1.0 if settings.top_p is None else float(settings.top_p),
            repetition_penalty=(
                1.0 if settings.repetition_penalty is None else float(settings.repetition_penalty)
            ),
            no_repeat_ngram_size=settings.no_repeat_ngram_size or 0,
            seed=settings.seed,
        )

    @property
    def plain_greedy(self) -> bool:
        """Greedy without a penalty or a ban: what `generate` does on its own."""
        return (
            self.temperature == 0
            and self.repetition_penalty == 1
            and self.no_repeat_ngram_size == 0
        )


def generate_batch(
    loaded: LoadedModel,
    conversations: Sequence[list[Message]],
    settings: Sequence[GenerateSettings],
    *,
    cancelled: Sequence[Callable[[], bool]],
) -> list[Completion | BackendError]:
    """Generate for every conversation at once; one result (or error) per conversation.

    All `settings` share their stop sequences; max tokens and decoding are each request's own.
    """
    tokenizer = loaded.tokenizer
    stops = tuple(settings[0].stop)
    results: list[Completion | BackendError | None] = [None] * len(conversations)
    rows: list[int] = []  # the conversations that go into the batch
    prompt_ids: list[list[int]] = []
    for index, messages in enumerate(conversations):
        max_tokens = settings[index].max_tokens
        try:
            text = tokenizer.apply_chat_template(
                [m.as_dict() for m in messages], tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:  # a template that refuses a role or an order of roles
            results[index] = BackendError(f"chat template failed: {exc}", kind="bad_request")
            continue
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        limit = loaded.max_positions
        if limit is not None and len(ids) + max_tokens > limit:
            results[index] = BackendError(
                f"prompt of {len(ids)} tokens + max_tokens {max_tokens} exceeds the model's "
                f"{limit} positions",
                kind="context_length",
            )
            continue
        rows.append(index)
        prompt_ids.append(list(ids))
    if rows:
        limits = [settings[i].max_tokens for i in rows]
        outputs = _generate(
            loaded,
            prompt_ids,
            decodings=[
                RowDecoding.of(settings[i]).for_prompt(ids)
                for i, ids in zip(rows, prompt_ids, strict=True)
            ],
            limits=limits,
            stops=stops,
            top_k=max((settings[i].top_logprobs or 0) for i in rows),
            cancelled=[cancelled[i] for i in rows],
        )
        eos_ids = _eos_ids(loaded)
        pad_id = tokenizer.pad_token_id
        first_logprobs = outputs.get("first_logprobs")
        for row, index in enumerate(rows):
            generated: list[int] = outputs["generated"][row][: limits[row]]
            completion = _completion(tokenizer, generated, eos_ids, pad_id, stops)
            completion.prompt_tokens = len(prompt_ids[row])
            completion.extra["batch_size"] = len(rows)
            k = settings[index].top_logprobs
            if k and first_logprobs is not None:
                completion.top_logprobs = first_logprobs[row][:k]
            results[index] = completion
    return [r if r is not None else BackendError("no result", kind="unknown") for r in results]


def stream_seed(seed: int, prompt_ids: Sequence[int]) -> int:
    """The seed of a row's random generator: the request's seed and its prompt, hashed together.

    The same request (seed and prompt) gets the same stream, so it gives the same text again. Two
    requests with the same seed but different prompts get unrelated streams: an engine hands every
    call of a model the same seed, and with the seed alone contestants with different personas but
    similar next-token distributions drew the same uniform numbers, and so often the same text
    (measured on the quickstart: 4 turn texts shared between two contestants, of 48 turns).

    >>> stream_seed(0, [1, 2, 3]) == stream_seed(0, [1, 2, 3]) != stream_seed(0, [1, 2, 4])
    True
    """
    digest = hashlib.sha256(str(seed).encode() + b":" + array("Q", prompt_ids).tobytes())
    return int.from_bytes(digest.digest()[:8], "big") & (2**63 - 1)


def _eos_ids(loaded: LoadedModel) -> set[int]:
    configured = getattr(loaded.model.generation_config, "eos_token_id", None)
    if configured is None:
        configured = loaded.tokenizer.eos_token_id
    if isinstance(configured, int):
        return {configured}
    return {int(i) for i in configured or ()}


def _completion(
    tokenizer: Any,
    generated: list[int],
    eos_ids: set[int],
    pad_id: int | None,
    stops: tuple[str, ...],
) -> Completion:
    """One row's completion: its own tokens only (at most its max tokens), cut at its end."""
    end = next(
        (i for i, token in enumerate(generated) if token in eos_ids or token == pad_id),
        None,
    )
    body = generated if end is None else generated[:end]
    text = tokenizer.decode(body, skip_special_tokens=True)
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=None)
    if cut is not None:
        # Stopped by a stop sequence: what follows in the row is padding, not a generated token.
        return Completion(text=text[:cut], completion_tokens=len(body), finish_reason="stop")
    if end is None:
        return Completion(text=text, completion_tokens=len(body), finish_reason="length")
    return Completion(text=text, completion_tokens=end + 1, finish_reason="stop")


class _RowDecoder:
    """Chooses the next token of every row of a batch, each by its own `RowDecoding`."""

    def __init__(self, decodings: Sequence[RowDecoding], prompt_starts: Sequence[int], device: str):
        """`prompt_starts[row]`: the position of the row's first prompt token (after padding)."""
        import torch

        self._torch = torch
        self.greedy = [d.temperature == 0 for d in decodings]
        self.sampled = [row for row, greedy in enumerate(self.greedy) if not greedy]
        penalties = [d.repetition_penalty for d in decodings]
        self.penalize = any(p != 1 for p in penalties)
        self.penalty = torch.tensor(penalties, dtype=torch.float32, device=device)[:, None]
        self.starts = torch.tensor(list(prompt_starts), dtype=torch.long, device=device)
        self.prompt_starts = list(prompt_starts)
        self.ngram_sizes = [d.no_repeat_ngram_size for d in decodings]
        self._tokens: list[list[int]] = [[] for _ in decodings]
        """Per row with a ban: its tokens so far, padding left out."""
        self._followers: list[dict[tuple[int, ...], set[int]]] = [{} for _ in decodings]
        """Per row: each (n-1)-token sequence of its tokens so far -> the tokens after it."""
        sampled = [decodings[row] for row in self.sampled]
        self.temperature = torch.tensor(
            [d.temperature for d in sampled], dtype=torch.float32, device=device
        )[:, None]
        self.top_p = [d.top_p for d in sampled]
        self.nucleus = any(top_p < 1 for top_p in self.top_p)
        self.generators: list[Any] = []
        for decoding in sampled:
            generator = torch.Generator(device=device)
            if decoding.seed is None:
                generator.seed()
            else:
                generator.manual_seed(decoding.seed % 2**64)
            self.generators.append(generator)

    def penalized(self, input_ids: Any, scores: Any) -> Any:
        """`scores` with each row's repetition penalty applied to the tokens its row holds."""
        torch = self._torch
        if not self.penalize:
            return scores
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        real = positions[None, :] >= self.starts[:, None]  # padding is no part of the prompt
        # A padding position stands for the row's first prompt token instead: that one is
        # penalized anyway, and every write into a token's column writes the same value.
        first = input_ids.gather(1, self.starts[:, None])
        ids = torch.where(real, input_ids, first)
        held = scores.gather(1, ids)
        held = torch.where(held > 0, held / self.penalty, held * self.penalty)
        return scores.scatter(1, ids, held)

    def banned(self, input_ids: Any) -> list[list[int]]:
        """Per row, the tokens that would repeat an n-gram of its prompt and reply (n: the row's
        size). Each row's index of (n-1)-grams and their followers is built from its prompt at the
        first step and then grows by one token a step, so a step costs the same however long the
        row is."""
        out: list[list[int]] = []
        for row, n in enumerate(self.ngram_sizes):
            if n == 0:
                out.append([])
                continue
            tokens = self._tokens[row]
            known = len(tokens)
            tokens.extend(input_ids[row, self.prompt_starts[row] + known :].tolist())
            followers = self._followers[row]
            for end in range(max(known, n - 1), len(tokens)):
                followers.setdefault(tuple(tokens[end - n + 1 : end]), set()).add(tokens[end])
            if len(tokens) < n - 1:
                out.append([])
                continue
            context = tuple(tokens[len(tokens) - n + 1 :])
            out.append(sorted(followers.get(context, ())))
        return out

    def choose(self, input_ids: Any, scores: Any) -> Any:
        """The next token of every row (a 1-D tensor of token ids)."""
        torch = self._torch
        scores = self.penalized(input_ids, scores)
        if any(self.ngram_sizes):
            bans = self.banned(input_ids)
            if any(bans):
                scores = scores.clone()
                for row, tokens in enumerate(bans):
                    if tokens:
                        scores[row, tokens] = float("-inf")
        chosen = scores.argmax(dim=-1)
        if not self.sampled:
            return chosen
        index = torch.tensor(self.sampled, device=scores.device)
        probs = torch.softmax(scores[index] / self.temperature, dim=-1)
        if self.nucleus:  # the nucleus is nearly always among the most likely few hundred
            top_probs, top_ids = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
        for j, row in enumerate(self.sampled):
            top_p = self.top_p[j]
            ids = None  # the weights are the whole vocabulary's, in token order
            weights = probs[j]
            if top_p < 1:
                weights, ids = top_probs[j], top_ids[j]
                if float(weights.sum()) < top_p:  # a flat distribution: sort all of it
                    weights, ids = probs[j].sort(descending=True)
                # The smallest prefix of the most likely tokens whose mass reaches top p.
                inside = int(((weights.cumsum(0) - weights) < top_p).sum())
                weights, ids = weights[:inside], ids[:inside]
            chosen[row] = self._draw(weights, ids, self.generators[j])
        return chosen

    def _draw(self, weights: Any, ids: Any, generator: Any) -> Any:
        """One token drawn with probability proportional to `weights` (inverse CDF, one uniform
        number from the row's generator): `ids[i]` for weight i, or i itself when `ids` is None.
        A token of weight 0 is never drawn: the cumulative sum does not rise at it."""
        torch = self._torch
        cumulative = weights.cumsum(0)
        point = torch.rand(1, generator=generator, device=weights.device) * cumulative[-1]
        position = torch.searchsorted(cumulative, point, right=True).clamp(max=len(weights) - 1)
        return position[0] if ids is None else ids[position[0]]

    def one_hot_scores(self, input_ids: Any, scores: Any) -> Any:
        """Scores in which only each row's chosen token is finite, for `generate`'s argmax."""
        torch = self._torch
        chosen = self.choose(input_ids, scores)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen[:, None], 0.0)
        return out


def _generate(
    loaded: LoadedModel,
    prompt_ids: list[list[int]],
    *,
    decodings: Sequence[RowDecoding],
    limits: Sequence[int],
    stops: tuple[str, ...],
    top_k: int,
    cancelled: Sequence[Callable[[], bool]],
) -> dict[str, Any]:
    import torch
    from transformers import (
        LogitsProcessor,
        LogitsProcessorList,
        StoppingCriteria,
        StoppingCriteriaList,
    )

    tokenizer = loaded.tokenizer
    model = loaded.model
    batch = tokenizer.pad({"input_ids": prompt_ids}, padding=True, return_tensors="pt")
    input_ids = batch["input_ids"].to(loaded.device)
    attention_mask = batch["attention_mask"].to(loaded.device)
    width = input_ids.shape[1]
    row_limits = torch.tensor(list(limits), dtype=torch.long, device=loaded.device)

    class _Ends(StoppingCriteria):  # type: ignore[misc, unused-ignore]
        """Ends a row at its own max tokens, or when its caller gave up (timed out)."""

        def __call__(self, ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = torch.tensor([check() for check in cancelled], dtype=torch.bool)
            return done.to(ids.device) | (ids.shape[1] - width >= row_limits)

    kwargs: dict[str, Any] = {
        "max_new_tokens": max(limits),
        "pad_token_id": tokenizer.pad_token_id,
        "stopping_criteria": StoppingCriteriaList([_Ends()]),
        "return_dict_in_generate": True,
        # Greedy: the decoder below, when there is one, leaves one finite score per row.
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "top_k": None,
    }
    if not all(d.plain_greedy for d in decodings):
        starts = [width - len(ids) for ids in prompt_ids]
        decoder = _RowDecoder(decodings, starts, loaded.device)

        class _Decode(LogitsProcessor):  # type: ignore[misc, unused-ignore]
            def __call__(self, ids: Any, scores: Any) -> Any:
                return decoder.one_hot_scores(ids, scores)

        kwargs["logits_processor"] = LogitsProcessorList([_Decode()])
    if stops:
        kwargs.update(stop_strings=list(stops), tokenizer=tokenizer)

    captured: list[Any] = []

    def keep_first_logits(module: Any, args: Any, output: Any) -> None:
        if not captured:  # the prefill pass: logits at each prompt's last position
            captured.append(output["logits"][:, -1, :].float())

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    handle = base.register_forward_hook(keep_first_logits) if top_k else None
    try:
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    finally:
        if handle is not None:
            handle.remove()
    result: dict[str, Any] = {"generated": out.sequences[:, width:].tolist()}
    if top_k and captured:
        logprobs = torch.log_softmax(captured[0], dim=-1)
        values, indices = torch.topk(logprobs, k=min(top_k, logprobs.shape[-1]), dim=-1)
        result["first_logprobs"] = [
            [
                (tokenizer.decode([int(token)]), float(value))
                for token, value in zip(ids_row, values_row, strict=True)
            ]
            for ids_row, values_row in zip(indices.tolist(), values.tolist(), strict=True)
        ]
    return result
