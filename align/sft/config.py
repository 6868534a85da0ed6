"""`SFTConfig`: what `align sft` takes (YAML recipe keys and `--field value` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reward.configuration import check
from reward.options import DataOptions, ModelOptions, TrainOptions

__all__ = ["SFTConfig"]


@dataclass
class SFTConfig(ModelOptions, DataOptions, TrainOptions):
    """Supervised fine-tuning: the loss is on the assistant's completion only, never on the prompt."""

    output_dir: str = field(default="outputs/sft", metadata={"help": "Where checkpoints and the adapter go."})
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (AdamW); 2e-4 suits LoRA."})
    packing: bool = field(default=False, metadata={
        "help": "Pack several short examples into one sequence (padding-free); faster on short chats."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.data is not None, "data", self.data,
              "must name a chat file (`messages` rows) or a preference file (its chosen side is used)")
