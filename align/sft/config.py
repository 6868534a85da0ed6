"""`SFTConfig`: what `align sft` takes (YAML recipe keys and `--field value` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.options import DataOptions, ModelOptions, TrainerOptions
from foundation.recipe import check

__all__ = ["SFTConfig"]


@dataclass
class SFTConfig(ModelOptions, DataOptions, TrainerOptions):
    """Supervised fine-tuning: the loss is on the assistant's completion only, never on the prompt."""

    output_dir: str = field(default="outputs/sft", metadata={"help": "Where checkpoints and the adapter go."})
    learning_rate: float = field(default=2e-4, metadata={
        "help": "Peak learning rate (AdamW); 2e-4 suits LoRA."})
    max_length: int = field(default=512, metadata={
        "help": "Longest example in tokens; longer ones are truncated."})
    packing: bool = field(default=False, metadata={
        "help": "Pack several short examples into one sequence (padding-free); faster on short chats."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_trainable()
        check(self.max_length >= 16, "max_length", self.max_length, "must be at least 16 tokens")
        check(self.data is not None, "data", self.data,
              "must name a chat file (`messages` rows) or a preference file (its chosen side is used)")
