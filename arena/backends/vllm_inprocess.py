"""vLLM inside the arena process (`backend: vllm`), for a single GPU box.

The engine is vLLM's async engine (`AsyncLLMEngine`, the v1 `AsyncLLM`), created on the first
call and shared by every config entry of the same base model: entries that name an `adapter` are
served as LoRA requests on that one engine, so a base model and its fine-tuned adapters debate
each other without loading the weights twice. Prefix caching is on, which the arena's prompt
layout is made for (docs/engine.md).

vLLM is imported only when a call is made, from the `vllm` extra. It needs a GPU (or vLLM's own
CPU build); without it the first call fails with a message saying what to install. To use vLLM
from another environment, serve the model with `vllm serve` and use `backend: vllm-server`.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from arena.backends.base import Backend, BackendSpec, Completion, GenerateSettings, Message
from arena.core.errors import BackendError

INSTALL_HINT = (
    "the 'vllm' backend needs vLLM and a GPU: pip install 'debate-arena[vllm]' "
    "(or serve the model with `vllm serve` and use backend: vllm-server)"
)


class VllmSpec(BackendSpec):
    """`backend: vllm`: a model run by vLLM inside the arena process."""

    backend: Literal["vllm"]
    model: str = Field(min_length=1)
    """A model folder or hub id vLLM can load, or 'smollm2-135m-instruct' (the embedded model)."""
    adapter: str | None = None
    """A PEFT LoRA adapter folder, served on top of `model` as a LoRA request."""
    max_model_len: int | None = Field(None, ge=16)
    """Context length to allocate for (vLLM's default: the model's)."""
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    """Share of GPU memory vLLM may take."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs to split the model over."""
    max_lora_rank: int = Field(64, ge=1)
    """Largest LoRA rank among the adapters."""
    engine_args: dict[str, Any] = Field(default_factory=dict)
    """Further vLLM engine arguments, passed through."""

    def model_id(self) -> str | None:
        return self.model if self.adapter is None else f"{self.model}+{self.adapter}"


@dataclass
class _Engine:
    """One vLLM engine and the adapters registered on it."""

    spec: VllmSpec
    adapters: dict[str, int] = field(default_factory=dict)
    engine: Any = None
    tokenizer: Any = None
    lock: asyncio.Lock | None = None


_ENGINES: dict[tuple[str, int, float], _Engine] = {}
_REQUEST_IDS = itertools.count()


def _engine_key(spec: VllmSpec) -> tuple[str, int, float]:
    return (spec.model, spec.tensor_parallel_size, spec.gpu_memory_utilization)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise BackendError(f"{INSTALL_HINT} ({error})", kind="bad_request") from None
    return vllm


async def _ensure_engine(entry: _Engine) -> Any:
    if entry.lock is None:
        entry.lock = asyncio.Lock()
    async with entry.lock:
        if entry.engine is None:
            vllm = _import_vllm()
            spec = entry.spec
            args = vllm.AsyncEngineArgs(
                model=_model_path(spec.model),
                tensor_parallel_size=spec.tensor_parallel_size,
                gpu_memory_utilization=spec.gpu_memory_utilization,
                max_model_len=spec.max_model_len,
                enable_prefix_caching=True,
                enable_lora=bool(entry.adapters),
                max_loras=max(len(entry.adapters), 1),
                max_lora_rank=spec.max_lora_rank,
                **spec.engine_args,
            )
            try:
                entry.engine = vllm.AsyncLLMEngine.from_engine_args(args)
            except Exception as error:  # vLLM raises many types on start-up; say what failed
                message = f"vLLM could not start {spec.model}: {error}"
                raise BackendError(message, kind="bad_request") from None
            tokenizer = entry.engine.get_tokenizer()
            entry.tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer
    return entry.engine


def _model_path(model: str) -> str:
    """The embedded model's name means its converted folder; anything else goes to vLLM as is."""
    from arena.backends.local_model import KNOWN_MODELS, ensure_converted

    return str(ensure_converted(model)) if model in KNOWN_MODELS else model


class VllmBackend(Backend):
    spec: VllmSpec

    def __init__(self, spec: VllmSpec):
        super().__init__(spec)
        self.spec = spec
        entry = _ENGINES.setdefault(_engine_key(spec), _Engine(spec))
        if spec.adapter is not None:
            path = str(Path(spec.adapter).expanduser().resolve())
            entry.adapters.setdefault(path, len(entry.adapters) + 1)
        self._entry = entry

    def _lora_request(self) -> Any:
        if self.spec.adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        path = str(Path(self.spec.adapter).expanduser().resolve())
        return LoRARequest(self.name, self._entry.adapters[path], path)

    async def generate(self, messages: list[Message], settings: GenerateSettings) -> Completion:
        engine = await _ensure_engine(self._entry)
        vllm = _import_vllm()
        prompt = self._entry.tokenizer.apply_chat_template(
            [m.as_dict() for m in messages], tokenize=False, add_generation_prompt=True
        )
        sampling = vllm.SamplingParams(
            max_tokens=settings.max_tokens,
            temperature=settings.temperature if settings.temperature is not None else 1.0,
            top_p=settings.top_p if settings.top_p is not None else 1.0,
            seed=settings.seed,
            stop=list(settings.stop) or None,
            logprobs=settings.top_logprobs,
        )
        request_id = f"arena-{next(_REQUEST_IDS)}"
        final = None
        try:
            async for output in engine.generate(
                prompt, sampling, request_id, lora_request=self._lora_request()
            ):
                final = output
        except asyncio.CancelledError:
            await engine.abort(request_id)
            raise
        except Exception as error:
            text = str(error)
            kind = "context_length" if "context length" in text.lower() else "server"
            raise BackendError(f"vLLM: {text}", kind=kind) from None
        if final is None or not final.outputs:
            raise BackendError("vLLM returned no output", kind="malformed")
        out = final.outputs[0]
        top: list[tuple[str, float]] | None = None
        if settings.top_logprobs and out.logprobs:
            first = out.logprobs[0]
            ranked = sorted(first.values(), key=lambda lp: -lp.logprob)
            top = [(str(lp.decoded_token), float(lp.logprob)) for lp in ranked]
        return Completion(
            text=out.text,
            prompt_tokens=len(final.prompt_token_ids or []),
            completion_tokens=len(out.token_ids),
            cost_usd=0.0,
            finish_reason=out.finish_reason,
            top_logprobs=top,
        )
