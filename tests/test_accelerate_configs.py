"""The accelerate configs in examples/accelerate/ (DDP, DeepSpeed ZeRO-2 and ZeRO-3), checked
with accelerate's own config class and launch parser: no GPU and no DeepSpeed needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO

CONFIGS = REPO / "examples" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind", "stage"),
    [
        ("ddp.yaml", "MULTI_GPU", None),
        ("zero2.yaml", "DEEPSPEED", 2),
        ("zero3.yaml", "DEEPSPEED", 3),
    ],
)
def test_config_loads_and_launches_arena(name: str, kind: str, stage: int | None) -> None:
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    path = CONFIGS / name
    config = ClusterConfig.from_yaml_file(str(path))  # refuses unknown top-level keys
    assert config.distributed_type.value == kind
    assert config.num_machines == 1 and not config.use_cpu
    parser = launch_command_parser()
    launch_options = {action.dest for action in parser._actions}
    deepspeed = config.deepspeed_config or {}
    assert set(deepspeed) <= launch_options  # every DeepSpeed key is an option accelerate knows
    assert deepspeed.get("zero_stage") == stage
    # left to the command (--grad-accum, max_grad_norm), so DeepSpeed cannot disagree with it
    assert "gradient_accumulation_steps" not in deepspeed and "gradient_clipping" not in deepspeed
    if stage == 3:  # the adapter's weights are gathered into one file at each save
        assert deepspeed["zero3_save_16bit_model"] is True
    args = parser.parse_args(
        ["--config_file", str(path), "-m", "arena", "train", "dpo", "--pairs", "p", "--out", "o"]
    )
    assert args.module and args.training_script == "arena"
    assert args.training_script_args == ["train", "dpo", "--pairs", "p", "--out", "o"]
    # the documented line is the one the file's own header gives
    assert "-m arena train dpo" in path.read_text()


def test_python_dash_m_arena_is_the_arena_command() -> None:
    """`accelerate launch -m arena` runs `python -m arena` in each process."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "arena", "train", "dpo", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(REPO),
        timeout=120,
    )
    assert result.returncode == 0 and "--pairs" in result.stdout
