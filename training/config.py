"""The settings of a training run: TRL's `DPOConfig` and PEFT's `LoraConfig` with our defaults,
read from defaults < YAML file < flags.

- `ArenaDPOConfig` extends TRL's `DPOConfig` (a `transformers.TrainingArguments`), so every TRL
  and transformers setting can be given in the YAML file by its own name, and adds ours: the
  perplexity safety stop (`ppl_bound`, `ppl_every`, `ppl_texts`, `ppl_batch_size`).
- `ArenaLoraConfig` extends PEFT's `LoraConfig`; the YAML file gives it as a `lora:` section.
- `load_train_config(out, config_file, flags)` merges the three layers, key by key, and returns a
  `TrainConfig` that also says where each value it was given came from (`origins`).

The defaults are PERSUADE's DPO recipe (a published debate-arena framework: a LoRA on a
Qwen3-4B, 81,192 turn-level pairs): LoRA r 16, alpha 32, dropout 0.05 on all linear layers; beta
0.2; learning rate 5e-6; batch 8; 1 epoch; warmup ratio 0.05; weight decay 0.01; max grad norm
1.0; mixed precision; a perplexity safety stop at 10.0. Where TRL's defaults differ we say so:

- `per_device_train_batch_size` 8: PERSUADE's batch of 8 on one device. The *effective* batch is
  per-device batch x `gradient_accumulation_steps` x the number of processes (GPUs); with several
  GPUs lower one of the first two to keep 8.
- `warmup_steps` 0.05: transformers 5 has no `warmup_ratio`; a `warmup_steps` below 1 is a ratio.
- `bf16`: None means on where a GPU computes bfloat16, off on the CPU (TRL turns it on everywhere,
  and a CPU without native bfloat16 emulates it slowly).
- `disable_dropout` False: TRL turns dropout off (including LoRA's), which would make PERSUADE's
  LoRA dropout a dead setting; the base models we train have no dropout of their own.
- `save_total_limit` 3: every checkpoint holds the optimizer state; the safety stop needs only the
  newest (every saved checkpoint passed the perplexity check, see training/callbacks.py).
- `report_to` "none" (transformers' default): `report_to: tensorboard` in the YAML turns it on.
- `activation_checkpointing` True: TRL's default, under transformers 5's new name
  (`gradient_checkpointing` is its deprecated alias, still accepted).

An unknown key is one `ConfigError` naming the file, its line and the key, with the closest known
key when there is one; a value of the wrong type likewise (values are checked against the field's
annotation with pydantic, which also reads YAML's `5e-6`, a string to YAML 1.1, as a float).

Simplified on purpose: only the LoRA section is nested; the whole TRL/transformers surface is
accepted as it is (a setting that makes no sense for us, such as `push_to_hub`, is passed on).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peft import LoraConfig
from pydantic import TypeAdapter, ValidationError
from trl.trainer.dpo_config import DPOConfig
from trl.trainer.grpo_config import GRPOConfig
from trl.trainer.sft_config import SFTConfig

from arena.config.errors import Positions
from arena.core.errors import ConfigError, UserError

LORA_SECTION = "lora"
"""The YAML key of the LoRA settings."""
MANAGED_FIELDS = {"output_dir": "--out"}
"""TrainingArguments fields the command sets itself: not accepted in the YAML file."""
MANAGED_LORA_FIELDS = {"task_type": "always CAUSAL_LM"}


def gpu_available() -> bool:
    """Whether torch sees a GPU."""
    import torch

    return bool(torch.cuda.is_available())


def gpu_computes_bf16() -> bool:
    """Whether torch sees a GPU that computes in bfloat16 (Ampere or later)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


@dataclass
class ArenaTrainingArgs:
    """The settings every `arena train` kind shares, mixed into TRL's config of the kind (first
    among the bases, so that these defaults win): PERSUADE's batch, epoch, warmup, decay and
    clipping, our precision and checkpoint rules, and the perplexity safety stop."""

    per_device_train_batch_size: int = 8
    """PERSUADE's batch of 8; the effective batch is this x gradient_accumulation_steps x GPUs."""
    per_device_eval_batch_size: int = 8
    num_train_epochs: float = 1.0
    warmup_steps: float = 0.05
    """A ratio of the training steps when below 1 (transformers 5 dropped `warmup_ratio`)."""
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bf16: bool | None = None
    """None: on where a GPU computes bfloat16, else off (the CPU trains in float32)."""
    save_total_limit: int | None = 3
    activation_checkpointing: bool | None = True
    """TRL's default (it saves memory on a GPU at ~20% of speed); false speeds up CPU runs."""
    gradient_checkpointing: bool | None = None
    """transformers 5's deprecated name of `activation_checkpointing`."""
    report_to: str | list[str] | None = "none"

    ppl_bound: float = 10.0
    """Stop when the perplexity of the held-out texts passes this (PERSUADE: 10.0)."""
    ppl_every: int = 100
    """Check the perplexity every this many optimizer steps (and at the last); 0: never."""
    ppl_texts: int = 32
    """How many distinct held-out (prompt, reply) texts the check scores, a seeded choice."""
    ppl_batch_size: int = 4
    """Texts per forward pass of the check (its logits are batch x length x vocabulary)."""

    def __post_init__(self) -> None:
        settings: Any = self  # a TrainingArguments by the time this runs
        if self.bf16 is None:
            self.bf16 = False if settings.fp16 else gpu_computes_bf16()
        if self.gradient_checkpointing is not None:  # the old name, given: it wins, as in TRL
            self.activation_checkpointing = None
        if settings.dataloader_pin_memory and not gpu_available():
            settings.dataloader_pin_memory = False  # torch warns that it means nothing without one
        if self.ppl_every < 0:
            raise ValueError("ppl_every must be 0 (no safety stop) or a number of steps")
        if self.ppl_texts < 1 or self.ppl_batch_size < 1:
            raise ValueError("ppl_texts and ppl_batch_size must be at least 1")
        if not self.ppl_bound > 1.0:
            raise ValueError("ppl_bound must be above 1 (a perplexity is at least 1)")
        super().__post_init__()  # type: ignore[misc]  # TRL's config, next in the MRO


@dataclass
class ArenaDPOConfig(ArenaTrainingArgs, DPOConfig):  # type: ignore[misc]
    """TRL's DPOConfig with PERSUADE's hyperparameters as defaults, and the safety stop."""

    learning_rate: float = 5e-6
    beta: float = 0.2
    disable_dropout: bool = False
    """Keep LoRA's dropout (TRL's default True would turn it off)."""


@dataclass
class ArenaSFTConfig(ArenaTrainingArgs, SFTConfig):  # type: ignore[misc]
    """TRL's SFTConfig with the shared defaults and the safety stop, for demonstrations.

    `learning_rate` is TRL's 2e-5 for `--full`; a LoRA run starts from `SFT_LORA_LEARNING_RATE`
    instead (`load_train_config`). Each row's last message (the winning turn) is the completion
    trained on: training/sft.py hands TRL prompt-completion rows, so TRL's `completion_only_loss`
    (None: on for such rows) applies; `completion_only_loss: false` trains on the whole chat.
    """

    learning_rate: float = 2e-5


SFT_LORA_LEARNING_RATE = 2e-4
"""The default learning rate of a LoRA SFT run: about 10x full fine-tuning's (TRL's PEFT docs)."""


@dataclass
class ArenaGRPOConfig(ArenaTrainingArgs, GRPOConfig):  # type: ignore[misc]
    """TRL's GRPOConfig with the shared defaults, and ours for rewards and records.

    The task's published recipe is a layer above these defaults (`GRPO_TASK_DEFAULTS`, given by
    `arena train grpo --task`). `per_device_train_batch_size` counts completions, not prompts (as
    in TRL): the prompts of one generation batch are that x `steps_per_generation` (by default
    `gradient_accumulation_steps`) x processes, divided by `num_generations`.

    There is no perplexity safety stop (`ppl_every` 0): GRPO has no held-out replies to score;
    the benchmark during training (`eval_every`) watches the model instead.
    """

    learning_rate: float = 1e-6
    """TRL's GRPO default."""
    use_vllm: bool | None = None  # type: ignore[assignment]  # TRL's is a bool
    """Generate with vLLM (TRL's rollouts, `vllm_mode` colocate by default). None: on where a GPU
    is present and vLLM is installed, plain `generate` otherwise (the CPU)."""
    ppl_every: int = 0
    bias_penalty: float = 0.0
    """BBQ: lambda, subtracted from the reward of a wrong answer that is the biased option."""
    store_completions: int = 16
    """Completions (with their rewards and advantages) recorded in the store at each logging
    step: the first ones of the step's batch, whole groups first; 0: none."""
    eval_every: int = 0
    """Run the task's benchmark on held-out items at step 0, every this many optimizer steps and
    at the last (training/grpo_eval.py); 0: never. PCT evaluated every 50."""
    eval_limit: int = 500
    """Held-out items per benchmark pass, a seeded sample fixed for the run; 0: all."""
    eval_max_tokens: int = 64
    """Max new tokens of each benchmark answer (greedy)."""

    def __post_init__(self) -> None:
        if self.bias_penalty < 0:
            raise ValueError("bias_penalty must be 0 or more (it is subtracted)")
        for name in ("store_completions", "eval_every", "eval_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")
        if self.eval_max_tokens < 1:
            raise ValueError("eval_max_tokens must be at least 1")
        import importlib.util

        has_vllm = importlib.util.find_spec("vllm") is not None
        if self.use_vllm is None:
            self.use_vllm = has_vllm and gpu_available()
        elif self.use_vllm and not has_vllm:
            raise ValueError("use_vllm: vLLM is not installed (pip install 'debate-arena[vllm]')")
        super().__post_init__()


GRPO_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # Political Consistency Training (Phan et al. 2026): LoRA r 32, alpha 32, dropout 0.05 on the
    # attention and MLP projections; lr 1e-4 linear, 3 epochs, 16 generations per prompt, batch
    # 4 x accumulation 4, completions up to 2,048 tokens, thinking off.
    "pcp": {
        "learning_rate": 1e-4,
        "lr_scheduler_type": "linear",
        "num_train_epochs": 3.0,
        "num_generations": 16,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 4,
        "max_completion_length": 2048,
        "chat_template_kwargs": {"enable_thinking": False},
        "eval_max_tokens": 512,
        "lora.r": 32,
        "lora.lora_alpha": 32,
        "lora.lora_dropout": 0.05,
        "lora.target_modules": [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    },
    # The BBQ abstention experiment: LoRA r 16, alpha 32 on all linear layers; lr 5e-6, KL beta
    # 0.04, temperature 1.3, 8 generations, 500 steps on one GPU; lambda 0.
    "bbq": {
        "learning_rate": 5e-6,
        "beta": 0.04,
        "temperature": 1.3,
        "num_generations": 8,
        "max_steps": 500,
        "bias_penalty": 0.0,
        "lora.r": 16,
        "lora.lora_alpha": 32,
        "lora.target_modules": "all-linear",
    },
}
"""The published recipe of each `arena train grpo --task`: a layer between the class defaults
and the YAML file (keys as flags name them, LoRA keys as `lora.<name>`)."""

CONFIGS: dict[str, type[ArenaDPOConfig] | type[ArenaSFTConfig] | type[ArenaGRPOConfig]] = {
    "dpo": ArenaDPOConfig,
    "sft": ArenaSFTConfig,
    "grpo": ArenaGRPOConfig,
}
"""The settings class of each kind of run."""


@dataclass
class ArenaLoraConfig(LoraConfig):
    """PEFT's LoraConfig with PERSUADE's LoRA: r 16, alpha 32, dropout 0.05, all linear layers,
    nothing else saved (what vLLM serves; see training/adapters.py)."""

    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | str | None = field(default="all-linear")
    """"all-linear": every linear layer but the output layer (PEFT's rule)."""
    task_type: Any = "CAUSAL_LM"


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one run, merged."""

    args: ArenaDPOConfig | ArenaSFTConfig | ArenaGRPOConfig
    """The trainer's settings (TRL's config of the kind, with ours)."""
    lora: ArenaLoraConfig
    origins: dict[str, str]
    """Where each value that is not a default came from: `dpo.yaml:3` or `--learning-rate`;
    LoRA keys as `lora.r`."""
    kind: str = "dpo"
    full: bool = False
    """Train every weight (`arena train sft --full`): no LoRA, a whole model is saved."""

    @property
    def dpo(self) -> ArenaDPOConfig:
        """The settings of a DPO run."""
        if not isinstance(self.args, ArenaDPOConfig):
            raise TypeError(f"the settings of a {self.kind} run, not of a dpo run")
        return self.args

    @property
    def grpo(self) -> ArenaGRPOConfig:
        """The settings of a GRPO run."""
        if not isinstance(self.args, ArenaGRPOConfig):
            raise TypeError(f"the settings of a {self.kind} run, not of a grpo run")
        return self.args

    @property
    def sft(self) -> ArenaSFTConfig:
        """The settings of an SFT run."""
        if not isinstance(self.args, ArenaSFTConfig):
            raise TypeError(f"the settings of a {self.kind} run, not of an sft run")
        return self.args

    def to_json(self) -> dict[str, Any]:
        """Every setting, JSON-safe (as recorded in `training_runs.config` and `arena.json`):
        the trainer's under the kind's name (`dpo`, `sft`), `lora` (None for a full run),
        `origins`, and `full` for SFT."""
        import json

        args = json.loads(self.args.to_json_string())  # type: ignore[no-untyped-call]
        lora = None
        if not self.full:
            lora = self.lora.to_dict()  # type: ignore[no-untyped-call]
            lora = json.loads(json.dumps(lora, default=_json_default))
        settings = {self.kind: args, "lora": lora, "origins": dict(self.origins)}
        if self.kind != "dpo":
            settings["full"] = self.full
        return settings


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


# --- the fields and their types -----------------------------------------------------------------


@functools.cache
def _fields(kind: str) -> dict[str, Any]:
    """The init fields of the settings dataclass of `kind` (or "lora") and their annotations."""
    cls: Any = ArenaLoraConfig if kind == "lora" else CONFIGS[kind]
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def args_fields(kind: str = "dpo") -> dict[str, Any]:
    """The keys the YAML file of a `kind` run may set at its top level."""
    return {k: v for k, v in _fields(kind).items() if k not in MANAGED_FIELDS}


def dpo_fields() -> dict[str, Any]:
    """The keys the YAML file of a DPO run may set at its top level."""
    return args_fields("dpo")


def lora_fields() -> dict[str, Any]:
    """The keys of the YAML file's `lora:` section."""
    return {k: v for k, v in _fields("lora").items() if k not in MANAGED_LORA_FIELDS}


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def check_value(annotation: Any, value: Any) -> Any:
    """`value` converted to the field's type; ValueError with pydantic's first message."""
    if annotation is Any:
        return value
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError as exc:
        raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None


def _unknown(key: str, known: Mapping[str, Any], where: str = "") -> str:
    if key in MANAGED_FIELDS and not where:
        return f"set by {MANAGED_FIELDS[key]}, not in the config file"
    if key in MANAGED_LORA_FIELDS and where:
        return f"not a setting here ({MANAGED_LORA_FIELDS[key]})"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {where}setting{hint}"


# --- the three layers ---------------------------------------------------------------------------


def read_config_file(
    path: Path, kind: str = "dpo"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The trainer's values, the LoRA values and their origins (`file:line`) of a YAML config
    file for a `kind` run.

    Raises ConfigError (file:line: key: problem) on an unknown key or a value of the wrong type.
    """
    from arena.config.load import parse_yaml

    source = str(path)
    data, positions = parse_yaml(path)
    if data is None:
        return {}, {}, {}
    if not isinstance(data, dict):
        raise ConfigError(source, None, "a training config is a mapping of settings", 1)
    dpo: dict[str, Any] = {}
    lora: dict[str, Any] = {}
    origins: dict[str, str] = {}
    known = args_fields(kind)
    for key, value in data.items():
        key = str(key)
        line = positions.get((key,))
        if key == LORA_SECTION:
            if not isinstance(value, dict):
                raise ConfigError(source, key, "a mapping of LoRA settings (r, lora_alpha, ...)")
            _read_section(value, source, positions, lora, origins)
            continue
        if key not in known:
            raise ConfigError(source, key, _unknown(key, {**known, LORA_SECTION: None}), line)
        dpo[key] = _checked(known[key], value, source, key, line)
        origins[key] = f"{source}:{line}" if line else source
    return dpo, lora, origins


def _read_section(
    section: dict[str, Any],
    source: str,
    positions: Positions,
    out: dict[str, Any],
    origins: dict[str, str],
) -> None:
    known = lora_fields()
    for key, value in section.items():
        key = str(key)
        line = positions.get((LORA_SECTION, key))
        name = f"{LORA_SECTION}.{key}"
        if key not in known:
            raise ConfigError(source, name, _unknown(key, known, "LoRA "), line)
        out[key] = _checked(known[key], value, source, name, line)
        origins[name] = f"{source}:{line}" if line else source


def _checked(annotation: Any, value: Any, source: str, name: str, line: int | None) -> Any:
    try:
        return check_value(annotation, value)
    except ValueError as exc:
        raise ConfigError(source, name, str(exc), line) from None


def load_train_config(
    out: Path,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    *,
    kind: str = "dpo",
    full: bool = False,
    defaults: Mapping[str, Any] | None = None,
    defaults_origin: str = "",
) -> TrainConfig:
    """defaults < `config_file` < `flags`, merged key by key, as a TrainConfig for a `kind` run
    (`dpo`, `sft`) into `out`; `full`: every weight is trained (SFT only), so no LoRA setting
    may be given.

    `flags`: the values given on the command line (None: not given), the trainer's fields by
    name and LoRA fields as `lora.<name>`; `flag_names`: the flag of each key, for errors and
    origins. An error in the merged whole (TRL or transformers refusing a combination) is a
    ConfigError of the file when there is one.

    `defaults`: a layer between the class defaults and the file (a task's recipe, keys as in
    `flags`), recorded in `origins` as `defaults_origin`.
    """
    if kind not in CONFIGS:
        raise ValueError(f"unknown kind of training run {kind!r}")
    dpo: dict[str, Any] = {}
    lora: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, value in (defaults or {}).items():
        section, _, name = key.rpartition(".")
        (lora if section == LORA_SECTION else dpo)[name] = value
        origins[key] = defaults_origin or "defaults"
    if config_file is not None:
        from_file, lora_file, origins_file = read_config_file(config_file, kind)
        dpo.update(from_file)
        lora.update(lora_file)
        origins.update(origins_file)
    names = dict(flag_names or {})
    for key, value in (flags or {}).items():
        if value is None:
            continue
        flag = names.get(key, "--" + key.replace("_", "-").replace(".", "-"))
        section, _, name = key.rpartition(".")
        target, known = (
            (lora, lora_fields()) if section == LORA_SECTION else (dpo, args_fields(kind))
        )
        if name not in known:
            raise UserError(f"{flag}: not a training setting")
        try:
            target[name] = check_value(known[name], value)
        except ValueError as exc:
            raise UserError(f"{flag}: {exc}") from None
        origins[key] = flag
    if full and lora:
        given = next(origins[k] for k in origins if k.startswith(LORA_SECTION + "."))
        raise UserError(f"{given}: a LoRA setting, and --full trains every weight without LoRA")
    if kind == "sft" and not full:
        dpo.setdefault("learning_rate", SFT_LORA_LEARNING_RATE)
    source = str(config_file) if config_file is not None else "settings"
    try:
        args = CONFIGS[kind](output_dir=str(out), **dpo)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, None, _first_line(exc)) from None
    try:
        lora_config = ArenaLoraConfig(**lora)
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, LORA_SECTION, _first_line(exc)) from None
    return TrainConfig(args, lora_config, origins, kind, full)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
