"""The option dataclasses that each command's config is composed from, as TRL composes `ModelConfig`
with a method's config:

    ModelOptions    which model, its adapter, quantization, dtype        (every trainer)
    DataOptions     which preference data, and how to read it           (SFT, DPO, reward)
    TrainOptions    output, steps, batch, learning rate, seed, logging  (every trainer)
    TrainerOptions  TrainOptions + epochs and gradient accumulation     (trainers on a 🤗 Trainer)

A config inherits exactly the groups its trainer reads, so that a flag a trainer ignores is an unknown
key (`align ppo --num_train_epochs 2` exits 2). `foundation.recipe.load_config` fills a config from a
YAML recipe and `--field value` flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from foundation.recipe import check

__all__ = ["ModelOptions", "DataOptions", "TrainOptions", "TrainerOptions", "MODEL_FIELDS"]


class _Validated:
    """End of the cooperative `__post_init__` chain: each options class validates its own fields."""

    def __post_init__(self) -> None:
        pass


@dataclass
class ModelOptions(_Validated):
    model: str = field(default="builtin:smollm2-135m-instruct", metadata={
        "help": "A hub id, a local folder, or builtin:smollm2-135m-instruct / builtin:minilm-l6 (offline)."})
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(default="auto", metadata={
        "help": "Weights dtype: auto is bf16 on a GPU that has it, fp32 on a CPU."})
    quantization: Literal["none", "4bit", "8bit"] = field(default="none", metadata={
        "help": "Load the base quantized by bitsandbytes: 4bit (NF4, double quant: QLoRA) or 8bit."})
    lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "Module names to adapt; default: found for Llama-, GPT-2-, BERT- and NeoX-like models."})
    adapter: str | None = field(default=None, metadata={
        "help": "A saved LoRA adapter (folder) on `model` to go on training, instead of a fresh one "
                "(its rank and targets are the saved ones)."})
    merge_adapter: str | None = field(default=None, metadata={
        "help": "A saved LoRA adapter (folder) merged into `model`'s weights as it loads: the policy it "
                "makes is the starting point, and the reference (adapter disabled) of DPO and PPO, of the "
                "fresh adapter trained on top (the loop's stacked rounds)."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory, about 30% more time."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.model), "model", self.model, "must name a model (hub id, folder or builtin:ALIAS)")
        check(self.lora_r > 0, "lora_r", self.lora_r, "must be a positive integer")
        check(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "must be a positive integer")
        check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", self.lora_dropout, "must be in [0, 1)")
        check(self.adapter is None or self.lora, "adapter", self.adapter,
              "trains through LoRA: set `lora: true`, or merge the adapter into the model first")

    def check_trainable(self) -> None:
        """For a config that trains the model: a quantized base trains only through an adapter."""
        check(self.lora or self.quantization == "none", "quantization", self.quantization,
              "needs `lora: true` (a quantized base only trains through an adapter); "
              "set lora or quantization: none")


@dataclass
class DataOptions(_Validated):
    data: str | None = field(default=None, metadata={
        "help": "Preference data: a JSONL/JSON/CSV/parquet file (.gz too) or a saved dataset folder."})
    format: Literal["auto", "hh", "kway", "records"] = field(default="auto", metadata={
        "help": "How to read `data`: hh transcripts, kway comparisons, records, or auto-detect."})
    skip_invalid: bool = field(default=False, metadata={
        "help": "Skip and count malformed rows instead of stopping."})
    max_samples: int | None = field(default=None, metadata={"help": "Use only the first N records."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_samples is None or self.max_samples > 0, "max_samples", self.max_samples,
              "must be a positive integer or null")


@dataclass
class TrainOptions(_Validated):
    output_dir: str = field(default="outputs/run", metadata={"help": "Where checkpoints and the result go."})
    max_steps: int = field(default=-1, metadata={
        "help": "Stop after this many optimizer steps (-1: epochs decide)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Examples per step and device."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate (AdamW)."})
    seed: int = field(default=42, metadata={"help": "Random seed for data order, init and sampling."})
    logging_steps: int = field(default=10, metadata={"help": "Log metrics every N steps."})
    save_steps: int = field(default=100, metadata={"help": "Save a checkpoint every N steps."})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(default="auto", metadata={
        "help": "Autocast matmuls, weights and optimizer stay in `dtype`: "
                "auto is bf16 on a CPU and on GPUs that have it "
                "(on a 2-core CPU: reward steps 1.8x, DPO steps 1.5x faster, same losses); no: plain fp32."})
    report_to: Literal["none", "tensorboard", "wandb"] = field(default="none", metadata={
        "help": "Where metrics go: none, tensorboard or wandb."})
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in output_dir."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_steps == -1 or self.max_steps > 0, "max_steps", self.max_steps,
              "must be -1 or positive")
        check(self.per_device_train_batch_size > 0, "per_device_train_batch_size",
              self.per_device_train_batch_size, "must be a positive integer")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be positive")


@dataclass
class TrainerOptions(TrainOptions):
    num_train_epochs: float = field(default=1.0, metadata={
        "help": "Passes over the data when max_steps is -1."})
    gradient_accumulation_steps: int = field(default=1, metadata={
        "help": "Steps accumulated per optimizer step."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_train_epochs > 0, "num_train_epochs", self.num_train_epochs, "must be positive")
        check(self.gradient_accumulation_steps > 0, "gradient_accumulation_steps",
              self.gradient_accumulation_steps, "must be a positive integer")


# The fields of `ModelOptions`: what the loop's `policy:` section holds for every policy stage.
MODEL_FIELDS = ("model", "dtype", "quantization", "lora", "lora_r", "lora_alpha", "lora_dropout",
                "lora_target_modules", "adapter", "merge_adapter", "gradient_checkpointing")
