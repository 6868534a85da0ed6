"""KTO on single-response good / bad ratings (the labeling app's rating tasks), built on TRL's KTOTrainer."""

from align.kto.config import KTOConfig

__all__ = ["KTOConfig", "train_kto"]


def train_kto(config: KTOConfig) -> str:
    """Train as `config` says; returns the output folder (imports the training stack lazily)."""
    from align.kto.trainer import train_kto as _train

    return _train(config)
