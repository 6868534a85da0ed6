"""Supervised fine-tuning on chat data, built on TRL's SFTTrainer."""

from align.sft.config import SFTConfig

__all__ = ["SFTConfig", "train_sft"]


def train_sft(config: SFTConfig) -> str:
    """Train as `config` says; returns the output folder (imports the training stack lazily)."""
    from align.sft.trainer import train_sft as _train

    return _train(config)
