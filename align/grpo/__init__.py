"""GRPO and RLOO on TRL's trainers, with our reward models and functions."""

from align.grpo.config import GRPOConfig

__all__ = ["GRPOConfig", "train_grpo"]


def train_grpo(config: GRPOConfig) -> str:
    """Train as `config` says; returns the output folder (imports the training stack lazily)."""
    from align.grpo.trainer import train_grpo as _train

    return _train(config)
