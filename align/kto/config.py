"""`KTOConfig`: what `align kto` takes (YAML recipe keys and `--field value` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.options import ModelOptions, TrainerOptions
from foundation.recipe import check

__all__ = ["KTOConfig"]


@dataclass
class KTOConfig(ModelOptions, TrainerOptions):
    """Kahneman-Tversky optimisation (Ethayarajh et al. 2024) of a LoRA policy on unpaired ratings: each
    row a prompt, one response and whether it is desirable. The reference is the base with the adapter
    disabled. Data: the labeling app's export (`export/kto`, a saved dataset) or JSONL rows with
    `prompt` (text or messages), `completion` (text or assistant messages) and `label` (true = good)."""

    data: str | None = field(default=None, metadata={
        "help": "Rated rows: a saved dataset folder (the labeling app's export/kto) or a JSONL file."})
    skip_invalid: bool = field(default=False, metadata={
        "help": "Skip malformed rows (counted) instead of stopping at the first one."})
    max_samples: int | None = field(default=None, metadata={"help": "Use only the first N rows."})
    output_dir: str = field(default="outputs/kto", metadata={"help": "Where checkpoints and the adapter go."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (AdamW)."})
    max_length: int = field(default=512, metadata={"help": "Longest prompt+response in tokens."})
    beta: float = field(default=0.1, metadata={"help": "Strength of the pull towards the reference (β)."})
    desirable_weight: float = field(default=1.0, metadata={
        "help": "Weight of the good rows' loss (λ_D); raise it when good rows are the rarer kind."})
    undesirable_weight: float = field(default=1.0, metadata={
        "help": "Weight of the bad rows' loss (λ_U). The paper keeps λ_D·n_D / (λ_U·n_U) in [1, 4/3]."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_trainable()
        check(self.max_length >= 16, "max_length", self.max_length, "must be at least 16 tokens")
        check(self.data is not None, "data", self.data,
              "must name rated rows (--data export/kto, or a JSONL of prompt, completion, label)")
        check(self.beta > 0, "beta", self.beta, "must be positive")
        check(self.desirable_weight > 0, "desirable_weight", self.desirable_weight, "must be positive")
        check(self.undesirable_weight > 0, "undesirable_weight", self.undesirable_weight, "must be positive")
