"""training: DPO and GRPO LoRA runs with TRL and PEFT (the `train` extra).

Heavy and optional: nothing imports this package at module level.
Not written yet: see the project's issues on training.
"""
