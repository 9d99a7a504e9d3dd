"""LoRA adapters that vLLM can serve, and the record an adapter folder keeps of where it came from.

vLLM's rules, read from its source (vllm-project/vllm: `vllm/lora/peft_helper.py`,
`vllm/config/lora.py`, `vllm/lora/lora_model.py` and the LoRA model manager):

- `modules_to_save` must be empty ("vLLM only supports modules_to_save being None") and DoRA is
  refused ("vLLM does not yet support DoRA");
- the rank must be at most `--max-lora-rank`, whose only accepted values are 1, 8, 16, 32, 64,
  128, 256, 320 and 512 (`MaxLoRARanks`; default 16); a larger rank fails at load with "LoRA
  rank 32 is greater than max_lora_rank 16". So a rank above 512 can never be served, and any
  other needs `--max-lora-rank` at the smallest accepted value at or above it
  (`vllm_max_lora_rank`);
- LoRA on the embeddings and the output layer (`embed_tokens`, `lm_head`), and saved copies of
  those layers, are on their way out of vLLM (extra-vocabulary LoRA is deprecated): we refuse
  them, and a LoRA bias, so that what we save is the plain case every vLLM version serves.

`lora_config_problems` checks settings before training (so a run that could not be served is
refused before it starts); `check_vllm_compatible` checks a saved adapter folder: its
`adapter_config.json` by the same rules and the tensor names in `adapter_model.safetensors`
(read from the file's header alone: no torch needed).

`arena.json` in the adapter folder records the base the adapter was trained on (as given to
`--base`, and the folder or hub id it resolved to), the training run's id, the pairs' provenance,
the status of the run and the `--max-lora-rank` to serve it with; PEFT's own
`adapter_config.json` names the base too (`base_model_name_or_path`).

Simplified on purpose: the rules are those of the vLLM versions we know, not probed from an
installed vLLM.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for `--max-lora-rank` (`MaxLoRARanks` in vllm/config/lora.py)."""
EMBEDDING_LAYERS = ("embed_tokens", "lm_head", "wte", "embed_out", "word_embeddings")
"""Names of input and output embedding layers in the model families we train."""
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
RECORD = "arena.json"
"""The adapter folder's record of where it came from (see `write_record`)."""


def vllm_max_lora_rank(rank: int) -> int | None:
    """The `--max-lora-rank` to serve an adapter of rank `rank` with; None when none is enough.

    >>> vllm_max_lora_rank(16), vllm_max_lora_rank(12), vllm_max_lora_rank(1024)
    (16, 16, None)
    """
    return next((value for value in VLLM_MAX_LORA_RANKS if value >= rank), None)


def _names_embedding(text: str) -> bool:
    """Whether a module name (or a target_modules pattern) names an embedding layer."""
    return any(layer in text for layer in EMBEDDING_LAYERS)


def lora_config_problems(config: Mapping[str, Any]) -> list[str]:
    """What would keep vLLM from serving an adapter with these LoRA settings (the keys of
    `adapter_config.json` / PEFT's `LoraConfig`); empty when nothing would.

    >>> lora_config_problems({"r": 16, "target_modules": "all-linear"})
    []
    >>> lora_config_problems({"r": 16, "modules_to_save": ["score"]})
    ['modules_to_save is set (score): vLLM serves only LoRA layers, with no modules_to_save']
    """
    problems: list[str] = []
    saved = config.get("modules_to_save")
    if saved:
        names = ", ".join(sorted(saved)) if not isinstance(saved, str) else saved
        problems.append(
            f"modules_to_save is set ({names}): vLLM serves only LoRA layers, "
            "with no modules_to_save"
        )
    rank = config.get("r")
    if not isinstance(rank, int) or vllm_max_lora_rank(rank) is None:
        problems.append(
            f"rank {rank} is not one vLLM serves: at most its largest --max-lora-rank, "
            f"{VLLM_MAX_LORA_RANKS[-1]}"
        )
    pattern = config.get("rank_pattern") or {}
    if isinstance(pattern, Mapping) and any(
        isinstance(r, int) and vllm_max_lora_rank(r) is None for r in pattern.values()
    ):
        problems.append(f"rank_pattern has a rank above {VLLM_MAX_LORA_RANKS[-1]}")
    if config.get("use_dora"):
        problems.append("use_dora is set: vLLM does not serve DoRA adapters")
    bias = config.get("bias", "none")
    if bias not in (None, "none") or config.get("lora_bias"):
        shown = f"bias is {bias!r}" if bias not in (None, "none") else "lora_bias is set"
        problems.append(f"{shown}: vLLM serves LoRA weights without biases")
    targets = config.get("target_modules")
    named = [targets] if isinstance(targets, str) else list(targets or [])
    embedded = [t for t in named if t != "all-linear" and _names_embedding(str(t))]
    if embedded:
        problems.append(
            f"target_modules includes an embedding layer ({', '.join(map(str, embedded))}): "
            "vLLM serves LoRA on the linear layers of the transformer blocks only"
        )
    if config.get("trainable_token_indices"):
        problems.append("trainable_token_indices is set: vLLM serves no trained token embeddings")
    return problems


def safetensors_names(path: Path) -> list[str]:
    """The tensor names in a safetensors file, from its header (8-byte length, then JSON)."""
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", head)
        if length > 100_000_000:
            raise ValueError(f"{path} is not a safetensors file (header of {length} bytes)")
        header = json.loads(f.read(length))
    return sorted(name for name in header if name != "__metadata__")


def check_vllm_compatible(adapter_dir: str | os.PathLike[str]) -> list[str]:
    """What would keep vLLM from serving the LoRA adapter saved in `adapter_dir`; empty when
    nothing would (its settings, and the tensors it holds: only LoRA A and B matrices of
    layers that are not embeddings)."""
    folder = Path(adapter_dir)
    config_path = folder / ADAPTER_CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{config_path} is missing: not a PEFT adapter folder"]
    except (OSError, ValueError) as exc:
        return [f"{config_path} cannot be read: {exc}"]
    if not isinstance(config, dict):
        return [f"{config_path} is not a JSON object"]
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type is {config.get('peft_type')!r}: vLLM serves LoRA adapters")
    problems += lora_config_problems(config)
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        return [*problems, f"{weights} is missing (vLLM reads adapter_model.safetensors)"]
    try:
        names = safetensors_names(weights)
    except (OSError, ValueError) as exc:
        return [*problems, f"{weights} cannot be read: {exc}"]
    foreign = [n for n in names if "lora_A" not in n and "lora_B" not in n]
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        problems.append(f"{ADAPTER_WEIGHTS} holds tensors that are not LoRA matrices ({shown})")
    embedded = [n for n in names if set(n.split(".")) & set(EMBEDDING_LAYERS)]
    if embedded:
        problems.append(
            f"{ADAPTER_WEIGHTS} holds embedding or output layer weights ({embedded[0]}, ...)"
        )
    return problems


def write_record(adapter_dir: Path, record: Mapping[str, Any]) -> None:
    """Write `arena.json` in `adapter_dir` (whole or not at all: a temporary file renamed)."""
    target = adapter_dir / RECORD
    tmp = adapter_dir / f".{RECORD}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n", "utf-8")
    os.replace(tmp, target)


def read_record(adapter_dir: Path) -> dict[str, Any] | None:
    """The `arena.json` of `adapter_dir`, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads((adapter_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
