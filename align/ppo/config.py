"""`PPOConfig`: what `align ppo` takes (YAML recipe keys and `--field value` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from align.rollout import ENGINE_HELP, Engine
from foundation.options import ModelOptions, TrainOptions
from foundation.recipe import check

__all__ = ["PPOConfig"]


@dataclass
class PPOConfig(ModelOptions, TrainOptions):
    """PPO on a LoRA policy. One base model holds everything: the policy is a LoRA adapter, the value
    function a head on the policy's last hidden state, and the reference the base with the adapter
    disabled; the base may be 4-bit (QLoRA)."""

    prompts: str | None = field(default=None, metadata={
        "help": "Prompts: .txt (one per line), JSONL with `prompt`, or a preference file (its prompts)."})
    reward_model: str = field(default="vader", metadata={
        "help": "A reward-model folder (`align reward train`), `vader` (VADER sentiment), or module:function "
                "taking (prompts, responses) and returning a list of floats."})
    output_dir: str = field(default="outputs/ppo", metadata={
        "help": "Where checkpoints, metrics and the adapter go."})
    max_steps: int = field(default=100, metadata={"help": "PPO updates (each: one batch of rollouts)."})
    per_device_train_batch_size: int = field(default=16, metadata={
        "help": "Prompts (rollouts) per PPO update and process (an update has this × processes)."})
    mini_batch_size: int = field(default=8, metadata={
        "help": "Rollouts per gradient step within an update, per process."})
    micro_batch_size: int = field(default=8, metadata={
        "help": "Rollouts per forward/backward (gradients accumulate to mini_batch_size). Peak memory grows "
                "with it: measured on CPU (SmolLM2-135M, 80 tokens), 8 took 4.2 GB and 4 took 2.6 GB without "
                "the shared-prefix forward, and 2.6 vs 2.4 GB with it (then 8 is 10% faster)."})
    share_prompt_prefix: bool = field(default=True, metadata={
        "help": "Forward the tokens that all prompts of a batch start with (a system prompt, an instruction) "
                "once per batch instead of once per rollout, in the reference pass and every update. "
                "Same result."})
    generation_batch_size: int | None = field(default=None, metadata={
        "help": "Rollouts sampled and scored together (default: per_device_train_batch_size); smaller saves "
                "memory. Each such chunk's sampling is seeded by (seed, update, chunk): 2 processes of B "
                "sample what 1 process of 2B samples with generation_batch_size B."})
    engine: Engine = field(default="auto", metadata={"help": ENGINE_HELP})
    torch_compile: bool = field(default=False, metadata={
        "help": "Compile the policy's decoder layers (torch.compile, dynamic shapes) for the trainer's own "
                "forwards and backwards: 1.5x faster per forward + backward on CPU in bf16, 1.2x per "
                "update in benchmarks/ppo_vs_trl.py, after 20-95 s of compiling in the first update "
                "(2-core CPU). Off by default: in a loop round's 20 updates (16 rollouts, 96 new tokens, "
                "bf16) it saved 2.3 s an update and cost 55-95 s of compiling."})
    activation_memory_budget: float = field(default=0.7, metadata={
        "help": "With torch_compile: the share of a forward's activations that the compiled layers keep for "
                "the backward (PyTorch's activation_memory_budget); below 1 the compiler recomputes the "
                "cheapest of the rest in the backward instead of keeping them. 0.7 lowered the peak of "
                "benchmarks/ppo_vs_trl.py at the same speed, 0.5 lowered it further at 8% more time per "
                "update (docs/benchmarks.md); 1: keep everything."})
    ppo_epochs: int = field(default=4, metadata={"help": "Passes over each batch of rollouts."})
    learning_rate: float = field(default=3e-5, metadata={
        "help": "AdamW learning rate (LoRA and value head)."})
    lora_dropout: float = field(default=0.0, metadata={
        "help": "Dropout off by default: PPO's ratios need the same network for rollout and update."})
    max_new_tokens: int = field(default=48, metadata={"help": "Longest response sampled."})
    max_prompt_length: int = field(default=256, metadata={
        "help": "Prompts longer than this lose their start."})
    temperature: float = field(default=1.0, metadata={
        "help": "Sampling temperature (also used in the update)."})
    missing_eos_penalty: float = field(default=0.0, metadata={
        "help": "Subtracted from the score of a response cut at max_new_tokens (e.g. 1.0)."})
    kl_coef: float = field(default=0.05, metadata={"help": "Initial β of the per-token KL penalty."})
    adaptive_kl: bool = field(default=True, metadata={
        "help": "Adapt β towards target_kl (Ziegler et al. 2019)."})
    target_kl: float = field(default=6.0, metadata={
        "help": "KL (nats per response) the adaptive controller aims at."})
    kl_horizon: float = field(default=10000.0, metadata={
        "help": "Horizon of the adaptive KL controller (samples)."})
    kl_stop: float | None = field(default=None, metadata={
        "help": "Stop early (saving a checkpoint) when the mean KL per response passes this bound."})
    gamma: float = field(default=1.0, metadata={"help": "Discount."})
    lam: float = field(default=0.95, metadata={"help": "GAE λ."})
    cliprange: float = field(default=0.2, metadata={"help": "PPO policy clip ε."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Value clip ε."})
    value_model: Literal["shared", "separate"] = field(default="shared", metadata={
        "help": "shared: the value head sits on the policy's hidden states (one base); "
                "separate: a second copy of the base with its own adapter under the head "
                "(more memory; no policy/value interference)."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss."})
    whiten_rewards: bool = field(default=False, metadata={
        "help": "Whiten per-token rewards (keeping their mean)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    save_steps: int = field(default=25, metadata={"help": "Save a checkpoint every N updates."})
    logging_steps: int = field(default=1, metadata={"help": "Log metrics every N updates."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept (oldest deleted)."})
    value_head_lr_scale: float = field(default=10.0, metadata={
        "help": "The value head is new: its learning rate is learning_rate × this."})
    score_batch_size: int = field(default=16, metadata={
        "help": "Responses a reward-model folder scores at a time "
                "(a function or `vader` scores all at once)."})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(default="auto", metadata={
        "help": "Autocast: auto is bf16 where the CPU or GPU multiplies it natively (with `dtype: auto`, the "
                "frozen base then loads in bf16), fp32 elsewhere; the choice is printed. A loop-sized update "
                "took 31.1 s against fp32's 56.3 s on a 2-core EPYC with AVX512-BF16. `no`: fp32, for a "
                "resume or a run over several processes that matches a straight run bit for bit."})

    def __post_init__(self):
        super().__post_init__()
        self.check_trainable()
        check(self.per_device_train_batch_size % self.mini_batch_size == 0, "mini_batch_size",
              self.mini_batch_size,
              f"must divide per_device_train_batch_size ({self.per_device_train_batch_size})")
        check(self.micro_batch_size > 0, "micro_batch_size", self.micro_batch_size, "must be positive")
        check(self.generation_batch_size is None or (self.generation_batch_size > 0 and
              self.per_device_train_batch_size % self.generation_batch_size == 0), "generation_batch_size",
              self.generation_batch_size,
              f"must divide per_device_train_batch_size ({self.per_device_train_batch_size})")
        check(self.lora, "lora", self.lora,
              "must be true: PPO trains an adapter so that the base is the reference")
        budget = self.activation_memory_budget
        check(0 < budget <= 1, "activation_memory_budget", budget, "must be in (0, 1] (1: keep all)")
        check(self.max_steps > 0, "max_steps", self.max_steps, "must be positive")
        check(self.kl_coef >= 0, "kl_coef", self.kl_coef, "must be non-negative")
        check(self.target_kl > 0, "target_kl", self.target_kl, "must be positive")
        check(0 < self.cliprange < 1, "cliprange", self.cliprange, "must be in (0, 1)")
        check(self.temperature > 0, "temperature", self.temperature, "must be positive (PPO samples)")
