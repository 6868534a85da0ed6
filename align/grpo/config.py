"""`GRPOConfig`: what `align grpo` (and `align rloo`) take."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from foundation.options import ModelOptions, TrainerOptions
from foundation.recipe import check

__all__ = ["GRPOConfig"]


@dataclass
class GRPOConfig(ModelOptions, TrainerOptions):
    """GRPO (or RLOO) of a LoRA policy on TRL's trainers, rewarded by our reward model (text level, so
    its tokenizer may differ from the policy's), `vader`, or any `module:function`."""

    algorithm: Literal["grpo", "rloo"] = field(default="grpo", metadata={
        "help": "grpo: group-normalised advantages (Shao et al. 2024); "
                "rloo: leave-one-out baseline (Ahmadian et al. 2024)."})
    prompts: str | None = field(default=None, metadata={
        "help": "Prompts file (.txt, JSONL with `prompt`, preference data)."})
    reward_model: str = field(default="vader", metadata={
        "help": "A reward-model folder, `vader`, or module:function (prompts, responses) -> list of floats."})
    output_dir: str = field(default="outputs/grpo", metadata={
        "help": "Where checkpoints and the adapter go."})
    max_steps: int = field(default=50, metadata={"help": "Optimizer steps."})
    per_device_train_batch_size: int = field(default=8, metadata={
        "help": "Completions per step and device (a multiple of num_generations)."})
    num_generations: int = field(default=4, metadata={"help": "Completions sampled per prompt (the group)."})
    max_completion_length: int = field(default=48, metadata={"help": "Longest completion."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    beta: float = field(default=0.04, metadata={
        "help": "KL coefficient against the reference (the base with the adapter disabled); "
                "0 skips the reference."})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate of the LoRA adapter."})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(default="no", metadata={
        "help": "Autocast; `no` (fp32) by default for exact resume."})

    def __post_init__(self):
        super().__post_init__()
        self.check_trainable()
        check(self.prompts is not None, "prompts", self.prompts, "must name a prompts file (--prompts FILE)")
        check(self.num_generations >= 2, "num_generations", self.num_generations,
              "must be at least 2 (a group)")
        check(self.per_device_train_batch_size % self.num_generations == 0, "per_device_train_batch_size",
              self.per_device_train_batch_size,
              f"must be a multiple of num_generations ({self.num_generations})")
