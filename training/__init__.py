"""training: LoRA adapters trained with TRL and PEFT on what the arena recorded (the `train` extra).

- `config`: `ArenaDPOConfig` (TRL's `DPOConfig` with PERSUADE's defaults and the perplexity
  safety stop) and `ArenaLoraConfig` (PEFT's `LoraConfig`); defaults < YAML < flags.
- `dpo`: `train_dpo`, the whole `arena train dpo` run (docs/training.md); `sft`: `train_sft`.
- `grpo`: `train_grpo`, the whole `arena train grpo --task bbq | pcp` run, and the tasks' inputs;
  `grpo_eval`: the task's benchmark during training and the held-out checks; `verl`: the
  export for verl (Parquet prompts and a `compute_score` reward module).
- `run`: the life of a run every kind shares.
- `callbacks`: the perplexity safety stop, the metrics recorder, the progress bar.
- `perplexity`: the perplexity of held-out chosen texts.
- `records`: the run's rows in `training_runs`, `training_metrics` and `training_completions`.
- `adapters`: vLLM's rules for a servable LoRA adapter; the adapter folder's `arena.json`.
- `deps`: whether the `train` extra is installed (standard library only).

Heavy and optional: nothing imports this package at module level (only `arena.cli`, inside its
commands), and `config`, `dpo` and `callbacks` import torch, transformers, TRL and PEFT when
imported. Not written yet: probes and steering (see the project's issues).
"""
