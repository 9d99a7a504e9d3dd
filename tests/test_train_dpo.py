"""`arena train dpo` on the embedded model (SmolLM2-135M), on the CPU, a few steps.

The pairs are those `arena pairs --format hf` exports from a small sim tournament (their
debates are in the same database, so the provenance query is tested for real), with the prompts
and replies cut short (tests/train_data.py) so that a DPO step takes about a second on two cores.

- the command trains 2 steps: metrics and the run in the store, the adapter in --out with its
  record, servable by vLLM's rules, LoRA-only tensors; the adapter loads in PEFT (LoRA B
  matrices moved off their zero start) and in the arena's local backend, which generates;
- the safety stop, on a constructed case: warmup makes step 1's learning rate 0 (a checkpoint
  under the bound), then a learning rate of 0.1 blows the perplexity up at step 2: training
  stops and the adapter left is checkpoint 1's; base weights never change, LoRA weights do;
- settings: defaults < YAML < flags, per layer; a misspelt key is one `error:` line with
  file:line, exit 2; LoRA settings vLLM could not serve are refused before anything loads;
- a rerun with other settings is refused; the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import query, require_local, run_arena, sim_models, tournament, write_yaml
from tests.train_data import short_pairs

require_local()

from training.deps import missing_train_modules  # noqa: E402

if missing_train_modules():
    pytest.skip(f"not installed: {', '.join(missing_train_modules())}", allow_module_level=True)

from transformers import TrainerCallback  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

SMALL = {
    "activation_checkpointing": False,  # faster on the CPU
    "per_device_train_batch_size": 2,
    "max_length": 64,
    "logging_steps": 1,
    "ppl_every": 1,
    "ppl_texts": 4,
    "ppl_bound": 1000.0,  # the base model's perplexity on these cut texts is about 190
}
"""The settings of every run here: tiny batches and sequences, a check at every step."""


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with arena.duckdb (a sim tournament), pairs/ (its pairs, cut) and dpo.yaml."""
    folder = tmp_path_factory.mktemp("train")
    models = sim_models({"alpha": 2.0, "beta": 0.0, "gamma": 1.0}, turns=2)
    done = tournament(folder, models, 4)
    assert done.returncode == 0, done.stderr
    exported = run_arena(
        "pairs", "--db", folder / "arena.duckdb", "--out", folder / "full", "--format", "hf",
        "--test-fraction", "0.25",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    short_pairs(folder / "full", folder / "pairs")
    write_yaml(folder / "dpo.yaml", SMALL)
    return folder


def train(folder: Path, out: str, *extra: str) -> Any:
    return run_arena(
        "train", "dpo", "--pairs", folder / "pairs", "--base", "smollm2-135m-instruct",
        "--out", folder / out, "--db", folder / "arena.duckdb", "--config",
        folder / "dpo.yaml", *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(arena: Path) -> Path:
    """`arena train dpo --max-steps 2` into arena/adapter."""
    done = train(arena, "adapter", "--max-steps", "2")
    assert done.returncode == 0, done.stderr
    assert "adapter (step 2) in" in done.stdout
    assert "--max-lora-rank 16" in done.stdout
    return arena


def test_the_run_and_its_metrics_are_in_the_store(trained: Path) -> None:
    db = trained / "arena.duckdb"
    [(run_id, kind, base, status, steps, adapter_step, out, version)] = query(
        db,
        "SELECT run_id, kind, base, status, steps, adapter_step, output_dir, arena_version"
        " FROM training_runs",
    )
    assert (kind, base, status, steps, adapter_step) == (
        "dpo",
        "smollm2-135m-instruct",
        "done",
        2,
        2,
    )
    assert out == str((trained / "adapter").resolve()) and version
    names = {
        (step, name)
        for step, name in query(db, "SELECT step, name FROM training_metrics ORDER BY ALL")
    }
    for name in ("loss", "rewards/margins", "rewards/accuracies", "learning_rate"):
        assert {(1, name), (2, name)} <= names
    assert {(0, "eval_perplexity"), (1, "eval_perplexity"), (2, "eval_perplexity")} <= names
    assert (2, "tokens_per_second") in names
    [(config,)] = query(db, "SELECT config FROM training_runs")
    settings = json.loads(config)
    assert settings["dpo"]["beta"] == 0.2 and settings["lora"]["r"] == 16
    assert settings["origins"]["max_steps"] == "--max-steps"
    # which adapter came from which debates: the debates of the training split's pairs
    rows = query(
        db,
        """
        SELECT t.output_dir, count(DISTINCT d.debate_id), list(DISTINCT d.topic_id)
        FROM training_runs t
        CROSS JOIN unnest(CAST(t.pairs -> '$.debate_ids' AS VARCHAR[])) AS u(debate_id)
        JOIN debates d ON d.debate_id = u.debate_id
        GROUP BY ALL
        """,
    )
    [(_, debates, topics)] = rows
    train_topics = {r[0] for r in query(db, "SELECT DISTINCT topic_id FROM debates")}
    assert debates > 0 and set(topics) < train_topics  # the test topic is not trained on
    assert run_id.startswith("dpo-")
    # and what `arena pairs` recorded of the export: its database, mode and split
    [(export,)] = query(db, "SELECT pairs -> '$.export' FROM training_runs")
    export = json.loads(export)
    assert export["database"] == str(db.resolve()) and export["mode"] == "dpo"
    assert export["options"]["test_fraction"] == 0.25


def test_the_adapter_is_servable_and_records_its_base(trained: Path) -> None:
    from training.adapters import check_vllm_compatible, read_record, safetensors_names

    out = trained / "adapter"
    assert check_vllm_compatible(out) == []
    names = safetensors_names(out / "adapter_model.safetensors")
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert not any("embed_tokens" in n or "lm_head" in n for n in names)
    record = read_record(out)
    assert record is not None
    assert record["base"] == "smollm2-135m-instruct" and record["status"] == "done"
    assert record["vllm"] == {"max_lora_rank": 16, "problems": []}
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == record["base_resolved"]
    assert adapter_config["r"] == 16 and adapter_config["lora_alpha"] == 32
    assert adapter_config["modules_to_save"] is None


def test_the_adapter_loads_and_generates(trained: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from arena.backends.base import GenerateSettings, Message
    from arena.backends.local import LocalBackend, LocalSpec
    from arena.backends.local_model import ensure_converted

    base = AutoModelForCausalLM.from_pretrained(ensure_converted(), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(trained / "adapter"))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().max() > 0 for p in lora_b)  # they start at zero
    spec = LocalSpec.model_validate(
        {"name": "smol-dpo", "backend": "local", "adapter": str(trained / "adapter")}
    )
    settings = GenerateSettings(max_tokens=5, temperature=0)
    done = asyncio.run(LocalBackend(spec).generate([Message("user", "Say hello.")], settings))
    assert done.text.strip() and 0 < (done.completion_tokens or 0) <= 5


class Watch(TrainerCallback):
    """Keeps the weights at the start of training and says which changed by its end."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        params = dict(kw["model"].named_parameters())
        self.before = {n: p.detach().clone() for n, p in params.items()}

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        import torch

        after = dict(kw["model"].named_parameters())
        self.changed = {n for n, p in after.items() if not torch.equal(p.detach(), self.before[n])}
        self.trainable = {n for n, p in after.items() if p.requires_grad}


def test_the_safety_stop_keeps_the_last_checkpoint_under_the_bound(
    arena: Path, tmp_path: Path
) -> None:
    from training.config import load_train_config
    from training.dpo import train_dpo

    out, db = tmp_path / "blown", tmp_path / "stop.duckdb"
    # step 1 trains at a learning rate of 0 (the first warmup step), step 2 at 0.1
    flags = {**SMALL, "max_steps": 4, "learning_rate": 0.1, "warmup_steps": 1}
    config = load_train_config(out, None, flags)
    watch = Watch()
    result = train_dpo(
        arena / "pairs", "smollm2-135m-instruct", out, db, config, callbacks=[watch],
        progress=False,
    )  # fmt: skip
    assert result.status == "stopped" and result.steps == 2 and result.adapter_step == 1
    assert result.perplexity[1] <= 1000 < result.perplexity[2]
    assert "passed the bound 1000 at step 2" in (result.stop_reason or "")
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-1"]
    kept = (out / "adapter_model.safetensors").read_bytes()
    assert kept == (out / "checkpoint-1" / "adapter_model.safetensors").read_bytes()
    assert watch.changed and all("lora_" in n for n in watch.changed)  # base weights unchanged
    assert watch.trainable == {n for n in watch.before if "lora_" in n}
    [(status, reason, adapter_step)] = query(
        db, "SELECT status, stop_reason, adapter_step FROM training_runs"
    )
    assert (status, adapter_step) == ("stopped", 1) and "perplexity" in reason
    checks = query(
        db, "SELECT step, value FROM training_metrics WHERE name = 'eval_perplexity' ORDER BY 1"
    )
    assert [step for step, _ in checks] == [0, 1, 2] and checks[2][1] > 1000


# --- settings --------------------------------------------------------------------------------


def test_a_yaml_value_overrides_the_default_and_a_flag_overrides_it(tmp_path: Path) -> None:
    from training.config import load_train_config

    out = tmp_path / "out"
    default = load_train_config(out)
    assert (default.dpo.learning_rate, default.dpo.beta, default.lora.r) == (5e-6, 0.2, 16)
    assert default.dpo.per_device_train_batch_size == 8 and default.dpo.warmup_steps == 0.05
    assert default.lora.target_modules == "all-linear" and default.dpo.bf16 is False  # CPU
    yaml_file = write_yaml(
        tmp_path / "dpo.yaml", {"learning_rate": "1e-4", "beta": 0.3, "lora": {"r": 8}}
    )
    from_yaml = load_train_config(out, yaml_file)
    assert (from_yaml.dpo.learning_rate, from_yaml.dpo.beta, from_yaml.lora.r) == (1e-4, 0.3, 8)
    assert from_yaml.origins["lora.r"] == f"{yaml_file}:4"
    flags = {"learning_rate": 2e-4, "lora.r": 32, "beta": None}  # None: not given
    both = load_train_config(out, yaml_file, flags, {"lora.r": "--lora-r"})
    assert (both.dpo.learning_rate, both.dpo.beta, both.lora.r) == (2e-4, 0.3, 32)
    assert both.origins["lora.r"] == "--lora-r" and both.origins["beta"] == f"{yaml_file}:2"


def test_a_misspelt_key_is_one_error_line_with_file_and_line(arena: Path, tmp_path: Path) -> None:
    config = tmp_path / "dpo.yaml"
    config.write_text("beta: 0.1\nlerning_rate: 1.0e-5\n", encoding="utf-8")
    done = run_arena(
        "train", "dpo", "--pairs", arena / "pairs", "--base", "smollm2-135m-instruct",
        "--out", tmp_path / "out", "--db", tmp_path / "x.duckdb", "--config", config,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {config}:2: lerning_rate: unknown setting; did you mean 'learning_rate'?"
    ]
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.duckdb").exists()


def test_lora_settings_vllm_cannot_serve_are_refused_before_training(
    arena: Path, tmp_path: Path
) -> None:
    from arena.core.errors import UserError
    from training.adapters import check_vllm_compatible, lora_config_problems
    from training.config import load_train_config
    from training.dpo import train_dpo

    assert lora_config_problems(load_train_config(tmp_path).lora.to_dict()) == []
    yaml_file = write_yaml(tmp_path / "dpo.yaml", {"lora": {"modules_to_save": ["lm_head"]}})
    config = load_train_config(tmp_path / "out", yaml_file)
    with pytest.raises(UserError, match=r"vLLM could not serve.*modules_to_save"):
        train_dpo(arena / "pairs", "smollm2-135m-instruct", tmp_path / "out", tmp_path / "x.db",
                  config)  # fmt: skip
    assert not (tmp_path / "out").exists()
    assert any("rank 1024" in p for p in lora_config_problems({"r": 1024}))
    assert any("DoRA" in p for p in lora_config_problems({"r": 8, "use_dora": True}))
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 16, "modules_to_save": ["score"]})
    )
    assert check_vllm_compatible(saved)[0].startswith("modules_to_save is set (score)")


def test_without_the_train_extra_one_line_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    from typer.testing import CliRunner

    from arena.cli import train as train_cli

    real: Callable[..., Any] = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a)
    )
    done = CliRunner().invoke(
        train_cli.app,
        ["dpo", "--pairs", str(tmp_path), "--base", "x/y", "--out", str(tmp_path / "o")],
    )
    assert done.exit_code == 2
    assert "(trl not installed): pip install 'debate-arena[train]'" in done.output


# --- rerunning (last: it trains the module's adapter further) --------------------------------


def test_other_settings_are_refused_and_the_same_command_resumes(trained: Path) -> None:
    refused = train(trained, "adapter", "--max-steps", "3", "--beta", "0.5")
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1 and "beta=0.2" in refused.stderr
    resumed = train(trained, "adapter", "--max-steps", "3")
    assert resumed.returncode == 0, resumed.stderr
    assert "trained 1 steps (step 3 in all)" in resumed.stdout
    db = trained / "arena.duckdb"
    assert query(db, "SELECT count(*), max(steps) FROM training_runs") == [(1, 3)]
    assert query(db, "SELECT count(*) FROM training_metrics WHERE name = 'loss'") == [(3,)]


def test_progress_off_a_terminal_is_one_line_a_log() -> None:
    """In a log file (not a terminal) each logged step is one line, however narrow the console."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from training.callbacks import ArenaProgress

    out = io.StringIO()
    progress = ArenaProgress(Console(file=out, width=40, force_terminal=False))
    state = SimpleNamespace(global_step=0, max_steps=8, is_world_process_zero=True)
    progress.on_train_begin(None, state, None)
    for step in (1, 2):
        state.global_step = step
        logs = {"loss": 0.69, "rewards/margins": -0.00585, "rewards/accuracies": 0.5}
        progress.on_log(None, state, None, logs={**logs, "learning_rate": 4.29e-05})
    lines = out.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["step 1/8", "step 2/8"]
    assert all(len(line) > 40 and line.endswith("tok/s -") for line in lines)
