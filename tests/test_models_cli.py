"""`arena models add-adapter` and `arena models list`: an adapter folder as a contestant.

The adapter folders are built by hand (only their files are read: `adapter_config.json`,
`arena.json`, and for vLLM the tensor names in `adapter_model.safetensors`' header), so no model
is loaded. Every written file is read back with the loader `arena tournament` uses.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena.config import load_models
from arena.core.errors import UserError
from tests.conftest import run_arena
from training.contestant import add_adapter, append_entry

BASE_PATH = "/models/smollm2-135m-instruct"

MODELS = """\
# my models: keep this comment
models:
  - name: base  # the model as it ships
    backend: local
    model: smollm2-135m-instruct
    persona: a calm analyst
    params: {temperature: 0.7, top_p: 0.95}
  - {name: other, backend: local, model: smollm2-135m-instruct}

judges:
  # the judge
  - {name: judge, backend: local, verdict: logprob, params: {temperature: 0.0}}
tournament: {turns: 4}
"""


def make_adapter(
    folder: Path, *, rank: int = 16, base: str | None = "smollm2-135m-instruct"
) -> Path:
    """An adapter folder as `arena train dpo` leaves it, without real weights."""
    folder.mkdir(parents=True)
    config: dict[str, Any] = {"peft_type": "LORA", "r": rank, "target_modules": "all-linear"}
    if base is not None:
        config["base_model_name_or_path"] = BASE_PATH
        record = {"kind": "dpo", "base": base, "base_resolved": BASE_PATH}
        (folder / "arena.json").write_text(json.dumps(record))
    (folder / "adapter_config.json").write_text(json.dumps(config))
    header = json.dumps(
        {
            "base_model.model.layers.0.q_proj.lora_A.weight": {
                "dtype": "F32",
                "shape": [1, 1],
                "data_offsets": [0, 4],
            }
        }
    ).encode()
    (folder / "adapter_model.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + bytes(4)
    )
    return folder


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    return models, make_adapter(tmp_path / "adapters" / "dpo-1")


def test_appends_an_entry_keeping_the_text(files: tuple[Path, Path]) -> None:
    models, adapter = files
    result = run_arena(
        "models", "add-adapter", "dpo", "--base", "base", "--adapter", adapter, "--models", models
    )
    assert result.returncode == 0, result.stderr
    assert f"appended to {models}: dpo on local" in result.stdout
    text = models.read_text()
    # everything that was there is still there, in order; the entry is after the last model
    before, judges = MODELS.split("\njudges:\n")
    assert text.startswith(before) and text.endswith("judges:\n" + judges)
    parsed = load_models(models)
    new = parsed.models[-1]
    assert [m.name for m in parsed.models] == ["base", "other", "dpo"]
    assert new.persona == "a calm analyst" and new.params.temperature == 0.7
    assert new.provider.adapter == str(adapter.resolve())  # type: ignore[attr-defined]
    assert parsed.tournament == {"turns": 4}
    listing = run_arena("models", "list", "--models", models)
    assert listing.returncode == 0 and "dpo" in listing.stdout


def test_creates_a_file_ready_for_a_tournament(tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "a")
    models = tmp_path / "loop.yaml"
    added = add_adapter(models, "smol-dpo", "smollm2-135m-instruct", adapter)
    assert added.created
    parsed = load_models(models)
    assert [m.name for m in parsed.models] == ["smollm2-135m-instruct", "smol-dpo"]
    assert [j.name for j in parsed.judges] == ["smollm2-judge"]
    assert models.read_text().startswith("# Written by `arena models add-adapter`")


def test_vllm_server_entry_and_serve_line(tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "a", rank=12)
    models = tmp_path / "served.yaml"
    added = add_adapter(models, "dpo", "smollm2-135m-instruct", adapter, backend="vllm-server")
    assert added.entry == {
        "name": "dpo",
        "backend": "vllm-server",
        "model": "dpo",
        "api_base": "http://127.0.0.1:8000/v1",
    }
    assert added.serve == (
        f"vllm serve {BASE_PATH} --served-model-name smollm2-135m-instruct --enable-lora "
        f"--lora-modules dpo={adapter.resolve()} --max-lora-rank 16"  # 12 -> vLLM's next value
    )
    assert load_models(models).models[1].provider.backend == "vllm-server"


def test_vllm_rank_above_the_engines_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "m.yaml"
    models.write_text(
        "models:\n  - {name: base, backend: vllm, model: smollm2-135m-instruct, max_lora_rank: 8}\n"
        "  - {name: b, backend: sim}\njudges:\n  - {name: j, backend: sim}\n"
    )
    with pytest.raises(UserError, match="rank 16 is above the base's max_lora_rank 8"):
        add_adapter(models, "dpo", "base", make_adapter(tmp_path / "a"))
    models.write_text(models.read_text().replace("max_lora_rank: 8", "max_lora_rank: 16"))
    added = add_adapter(models, "dpo", "base", tmp_path / "a")
    assert added.entry["adapter"] == str((tmp_path / "a").resolve())
    assert load_models(models).models[-1].provider.backend == "vllm"


def test_append_to_a_flow_list() -> None:
    text = "models: [{name: a, backend: sim}, {name: b, backend: sim}]  # two\njudges: []\n"
    out = append_entry(text, {"name": "c", "backend": "sim"})
    assert out.endswith("]  # two\njudges: []\n")
    assert [m["name"] for m in yaml.safe_load(out)["models"]] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("other", "--base", "base"), "models.yaml:8: models[1].name: an entry is named 'other'"),
        (("new", "--base", "nobody"), "--base: unknown base 'nobody'"),
        (("new", "--base", "base", "--adapter", "missing"), "--adapter: no folder"),
        (("new", "--base", "base", "--adapter", "."), "has no adapter_config.json"),
        (("new", "--base", "base", "--backend", "vllm"), "entry 'base' of"),
    ],
)
def test_mistakes_leave_the_file_unchanged(
    files: tuple[Path, Path], args: tuple[str, ...], message: str
) -> None:
    models, adapter = files
    default = () if "--adapter" in args else ("--adapter", str(adapter))
    result = run_arena("models", "add-adapter", *args, *default, "--models", models)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert models.read_text() == MODELS


def test_an_adapter_of_another_base_is_refused(files: tuple[Path, Path], tmp_path: Path) -> None:
    models, _ = files
    other = make_adapter(tmp_path / "qwen", base="Qwen/Qwen3-4B")
    with pytest.raises(UserError, match="trained on 'Qwen/Qwen3-4B', not on 'smollm2-135m"):
        add_adapter(models, "dpo", "base", other)
    assert models.read_text() == MODELS
    added = add_adapter(models, "dpo", "base", other, check_base=False)
    assert added.entry["model"] == "smollm2-135m-instruct"
