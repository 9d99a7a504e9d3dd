"""One batched generate call of the `local` backend: chat template, left padding, counting.

`generate_batch` takes requests that share their sampling settings, renders each conversation with
the tokenizer's chat template (generation prompt added), pads them on the left into one tensor and
runs one `generate` call. It then takes each row apart again: the tokens that row generated up to
and including its end-of-sequence token (what follows is padding, because the batch runs until its
longest row ends), its text without special tokens and cut before a stop sequence, and on request
the top-k log-probabilities of its first token, read from the logits of the prompt's last position
by a forward hook on the first (prefill) forward pass.

Runs in the batcher's worker thread; torch and transformers are imported here, never at module
level of anything the engine imports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from arena.backends.base import Completion, GenerateSettings, Message
from arena.backends.local_model import LoadedModel
from arena.core.errors import BackendError


def generate_batch(
    loaded: LoadedModel,
    conversations: Sequence[list[Message]],
    settings: Sequence[GenerateSettings],
    *,
    temperature: float,
    top_p: float,
    seed: int | None,
    cancelled: Sequence[Callable[[], bool]],
) -> list[Completion | BackendError]:
    """Generate for every conversation at once; one result (or error) per conversation.

    All `settings` share max_tokens and stop sequences; temperature 0 decodes greedily.
    """
    tokenizer = loaded.tokenizer
    max_tokens = settings[0].max_tokens
    stops = tuple(settings[0].stop)
    results: list[Completion | BackendError | None] = [None] * len(conversations)
    rows: list[int] = []  # the conversations that go into the batch
    prompt_ids: list[list[int]] = []
    for index, messages in enumerate(conversations):
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
        outputs = _generate(
            loaded,
            prompt_ids,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stops=stops,
            seed=seed,
            top_k=max((settings[i].top_logprobs or 0) for i in rows),
            cancelled=[cancelled[i] for i in rows],
        )
        eos_ids = _eos_ids(loaded)
        pad_id = tokenizer.pad_token_id
        first_logprobs = outputs.get("first_logprobs")
        for row, index in enumerate(rows):
            generated: list[int] = outputs["generated"][row]
            completion = _completion(tokenizer, generated, eos_ids, pad_id, stops)
            completion.prompt_tokens = len(prompt_ids[row])
            completion.extra["batch_size"] = len(rows)
            k = settings[index].top_logprobs
            if k and first_logprobs is not None:
                completion.top_logprobs = first_logprobs[row][:k]
            results[index] = completion
    return [r if r is not None else BackendError("no result", kind="unknown") for r in results]


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
    """One row's completion: its own tokens only, cut at its end."""
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


def _generate(
    loaded: LoadedModel,
    prompt_ids: list[list[int]],
    *,
    max_tokens: int,
    temperature: float,
    top_p: float,
    stops: tuple[str, ...],
    seed: int | None,
    top_k: int,
    cancelled: Sequence[Callable[[], bool]],
) -> dict[str, Any]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancelled(StoppingCriteria):  # type: ignore[misc, unused-ignore]
        """Ends the rows whose caller gave up (timed out), so a batch of them ends early."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [check() for check in cancelled]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    tokenizer = loaded.tokenizer
    model = loaded.model
    batch = tokenizer.pad({"input_ids": prompt_ids}, padding=True, return_tensors="pt")
    input_ids = batch["input_ids"].to(loaded.device)
    attention_mask = batch["attention_mask"].to(loaded.device)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
        "return_dict_in_generate": True,
    }
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        if seed is not None:
            torch.manual_seed(seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
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
    width = input_ids.shape[1]
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
