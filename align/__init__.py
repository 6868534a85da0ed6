"""align: policies and their training (SFT, DPO, PPO, GRPO), generation, evaluation, the loop, the CLI.

Importing this package is light: torch and the training libraries load inside the functions.
"""

from align.dpo import DPOConfig, train_dpo
from align.grpo import GRPOConfig, train_grpo
from align.policy import Generation, Policy, load_policy
from align.ppo import PPOConfig, train_ppo
from align.sft import SFTConfig, train_sft

__all__ = ["load_policy", "Policy", "Generation", "SFTConfig", "train_sft", "DPOConfig", "train_dpo",
           "PPOConfig", "train_ppo", "GRPOConfig", "train_grpo"]
