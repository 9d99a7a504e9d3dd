"""vLLM inside the arena process (`backend: vllm`): a short tournament with a LoRA contestant.

vLLM's GPU build needs a GPU: elsewhere this module is skipped, saying so. (CI has no GPU; the
vLLM path CI does run is tests/test_vllm_cpu_server.py, a real vLLM server on CPU.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import tournament

vllm = pytest.importorskip(
    "vllm",
    reason="vLLM is not installed here: the in-process backend needs a GPU and the vllm extra",
)
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no GPU: vLLM in process runs on a GPU", allow_module_level=True)


def _adapter(tmp_path: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from arena.backends.local_model import ensure_converted

    base = AutoModelForCausalLM.from_pretrained(ensure_converted("smollm2-135m-instruct"))
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path / "adapter"
    get_peft_model(base, config).save_pretrained(out)
    return out


def test_tournament_with_base_adapter_and_logprob_judge(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "backend": "vllm",
        "model": "smollm2-135m-instruct",
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.3,
    }
    models = {
        "tournament": {"turns": 4, "max_tokens": 48},
        "models": [
            {"name": "base", **common, "params": {"temperature": 0.7}},
            {"name": "tuned", **common, "adapter": str(_adapter(tmp_path))},
        ],
        "judges": [{"name": "judge", **common, "verdict": "logprob"}],
    }
    result = tournament(tmp_path, models, 2, timeout=600)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "arena.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from turns where length(text) > 0").fetchone() == (16,)
        probs = con.execute("select prob_for from verdicts").fetchall()
    assert len(probs) == 4 and all(p is not None and 0 <= p <= 1 for (p,) in probs)
