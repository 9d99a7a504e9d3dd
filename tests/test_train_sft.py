"""`arena pairs --mode sft`, then `arena train sft`, then `arena train dpo --base` on its output:
PERSUADE's two stages, on the embedded model (SmolLM2-135M), on the CPU, a few steps each.

The demonstrations are the winners' turns that `arena pairs --mode sft --format hf` exports from
a small sim tournament, cut short (tests/train_data.py) so that a step takes about a second.

- the LoRA run: the run, its loss and perplexity checks in the store with the export's
  provenance (mode sft); LoRA's default learning rate for SFT; the adapter servable by vLLM's
  rules, LoRA B matrices moved off zero;
- DPO on top of it: the adapter is merged into its base once (`merged/`), the DPO adapter's base
  is that merged model, and the chain of bases is in the store;
- `--full`: every weight trained, a whole model folder that the DPO run can take as `--base`
  (checked through its files and the store, one step);
- mistakes: pairs given to `train sft` (and demonstrations to `train dpo`), a LoRA flag with
  `--full`: one `error:` line, exit 2.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import query, require_local, run_arena, sim_models, tournament, write_yaml
from tests.train_data import short_demonstrations, short_pairs

require_local()

from training.deps import missing_train_modules  # noqa: E402

if missing_train_modules():
    pytest.skip(f"not installed: {', '.join(missing_train_modules())}", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

SMALL = {
    "activation_checkpointing": False,
    "per_device_train_batch_size": 2,
    "max_length": 64,
    "logging_steps": 1,
    "ppl_every": 1,
    "ppl_texts": 4,
    "ppl_bound": 1000.0,
}
"""Tiny batches and sequences, a check at every step (as in test_train_dpo.py)."""


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with arena.duckdb (a sim tournament), demos/ and pairs/ (its exports, cut short)
    and small.yaml."""
    folder = tmp_path_factory.mktemp("sft")
    models = sim_models({"alpha": 2.0, "beta": 0.0, "gamma": 1.0}, turns=2)
    done = tournament(folder, models, 4)
    assert done.returncode == 0, done.stderr
    db = folder / "arena.duckdb"
    for mode, name in (("sft", "demos-full"), ("dpo", "pairs-full")):
        exported = run_arena(
            "pairs", "--db", db, "--out", folder / name, "--format", "hf", "--mode", mode,
            "--test-fraction", "0.25",
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
    assert "demonstrations to" in run_arena(
        "pairs", "--db", db, "--out", folder / "again", "--format", "hf", "--mode", "sft",
    ).stdout  # fmt: skip
    short_demonstrations(folder / "demos-full", folder / "demos")
    short_pairs(folder / "pairs-full", folder / "pairs")
    write_yaml(folder / "small.yaml", SMALL)
    return folder


def train(
    folder: Path, kind: str, data: Path, base: str, out: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    flag = "--data" if kind == "sft" else "--pairs"
    return run_arena(
        "train", kind, flag, data, "--base", base, "--out", folder / out,
        "--db", folder / "arena.duckdb", "--config", folder / "small.yaml", *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sft(arena: Path) -> Path:
    """`arena train sft --max-steps 2` into arena/sft."""
    done = train(arena, "sft", arena / "demos", "smollm2-135m-instruct", "sft", "--max-steps", "2")
    assert done.returncode == 0, done.stderr
    assert "adapter (step 2) in" in done.stdout
    return arena / "sft"


def test_sft_run_is_recorded_with_its_demonstrations(arena: Path, sft: Path) -> None:
    db = arena / "arena.duckdb"
    [(kind, status, steps, config, pairs)] = query(
        db,
        "SELECT kind, status, steps, config, pairs FROM training_runs WHERE output_dir = "
        f"'{sft.resolve()}'",
    )
    assert (kind, status, steps) == ("sft", "done", 2)
    settings, provenance = json.loads(config), json.loads(pairs)
    assert settings["sft"]["learning_rate"] == 2e-4  # LoRA's default for SFT, not TRL's 2e-5
    assert settings["lora"]["r"] == 16 and settings["full"] is False
    assert provenance["export"]["mode"] == "sft"
    assert provenance["models"] and provenance["debate_ids"]
    names = {
        (step, name)
        for step, name in query(
            db,
            "SELECT m.step, m.name FROM training_metrics m JOIN training_runs r USING (run_id) "
            "WHERE r.kind = 'sft'",
        )
    }
    assert {(1, "loss"), (2, "loss"), (0, "eval_perplexity"), (2, "eval_perplexity")} <= names


def test_sft_adapter_is_servable_and_trained(sft: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from arena.backends.local_model import ensure_converted
    from training.adapters import check_vllm_compatible, read_record

    assert check_vllm_compatible(sft) == []
    record = read_record(sft)
    assert record is not None and record["kind"] == "sft"
    base = AutoModelForCausalLM.from_pretrained(ensure_converted(), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(sft))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().max() > 0 for p in lora_b)


def test_dpo_on_the_sft_adapter_merges_it_once(arena: Path, sft: Path) -> None:
    done = train(arena, "dpo", arena / "pairs", str(sft), "dpo-on-sft", "--max-steps", "1")
    assert done.returncode == 0, done.stderr
    merged = sft / "merged"
    assert (merged / "config.json").is_file() and (merged / "arena-merged.json").is_file()
    adapter_config = json.loads((arena / "dpo-on-sft" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(merged)
    [(config,)] = query(
        arena / "arena.duckdb", "SELECT config FROM training_runs WHERE kind = 'dpo'"
    )
    [link] = json.loads(config)["base_chain"]
    assert link["kind"] == "sft" and link["output_dir"] == str(sft.resolve())
    assert link["base"] == "smollm2-135m-instruct" and link["merged"] == str(merged)


def test_full_sft_writes_a_model_that_dpo_takes_as_base(arena: Path) -> None:
    done = train(arena, "sft", arena / "demos", "smollm2-135m-instruct", "full", "--full",
                 "--max-steps", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    full = arena / "full"
    assert "model (step 1) in" in done.stdout
    assert (full / "config.json").is_file() and not (full / "adapter_config.json").exists()
    [(config,)] = query(
        arena / "arena.duckdb",
        f"SELECT config FROM training_runs WHERE output_dir = '{full.resolve()}'",
    )
    settings = json.loads(config)
    assert settings["full"] is True and settings["lora"] is None
    assert settings["sft"]["learning_rate"] == 2e-5  # TRL's, for full fine-tuning
    done = train(arena, "dpo", arena / "pairs", str(full), "dpo-on-full", "--max-steps", "1")
    assert done.returncode == 0, done.stderr
    adapter_config = json.loads((arena / "dpo-on-full" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(full)


@pytest.mark.parametrize(
    ("kind", "data", "extra", "message"),
    [
        ("sft", "pairs", (), "holds preference pairs"),
        ("dpo", "demos", (), "holds SFT demonstrations"),
        ("sft", "demos", ("--full", "--lora-r", "8"), "--lora-r: a LoRA setting, and --full"),
    ],
)
def test_mistakes_are_one_line(
    arena: Path, kind: str, data: str, extra: tuple[str, ...], message: str
) -> None:
    done = train(arena, kind, arena / data, "smollm2-135m-instruct", "never", *extra)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not (arena / "never").exists()
