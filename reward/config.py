"""`RewardConfig`: what `align reward train` takes (YAML recipe keys and `--field value` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.options import DataOptions, ModelOptions, TrainerOptions
from foundation.recipe import check

__all__ = ["RewardConfig"]


@dataclass
class RewardConfig(ModelOptions, DataOptions, TrainerOptions):
    """Bradley-Terry reward model training with margins and ties (see reward/loss.py)."""

    model: str = field(default="builtin:minilm-l6", metadata={
        "help": "Backbone: an encoder (builtin:minilm-l6) or a causal LM (builtin:smollm2-135m-instruct)."})
    lora: bool = field(default=False, metadata={
        "help": "Train a LoRA adapter (and the head) instead of all weights; needed with quantization."})
    output_dir: str = field(default="outputs/reward", metadata={"help": "Where the reward model goes."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (AdamW)."})
    max_length: int = field(default=512, metadata={
        "help": "Longest prompt+response in tokens; longer pairs lose the start of the prompt (counted)."})
    margin_scale: float = field(default=1.0, metadata={
        "help": "Multiplies each record's margin (from labeled strength) in the loss; 0 ignores margins."})
    use_ties: bool = field(default=True, metadata={
        "help": "Train on ties (pull the two rewards together) instead of dropping them."})
    center_rewards_coefficient: float = field(default=0.0, metadata={
        "help": "Weight of the reward-centering term (Eisenstein et al. 2023); 0.01 is typical."})
    eval_data: str | None = field(default=None, metadata={
        "help": "Held-out preference file evaluated after training (accuracy, calibration, length bias)."})
    ensemble: int = field(default=1, metadata={
        "help": "Train N members with seeds seed..seed+N-1 for uncertainty (RewardEnsemble)."})
    disable_dropout: bool = field(default=True, metadata={
        "help": "Turn dropout off: a steadier pairwise signal, and about 1.5x faster steps on a CPU."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Share of steps with linear warm-up."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_trainable()
        check(self.max_length >= 16, "max_length", self.max_length, "must be at least 16 tokens")
        check(self.data is not None, "data", self.data, "must name a preference file (--data FILE)")
        check(self.margin_scale >= 0, "margin_scale", self.margin_scale, "must be non-negative")
        check(self.center_rewards_coefficient >= 0, "center_rewards_coefficient",
              self.center_rewards_coefficient, "must be non-negative")
        check(self.ensemble >= 1, "ensemble", self.ensemble, "must be at least 1")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "must be in [0, 1)")
