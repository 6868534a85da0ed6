"""Direct preference optimisation (and its loss variants) on TRL's DPOTrainer."""

from align.dpo.config import DPOConfig

__all__ = ["DPOConfig", "train_dpo"]


def train_dpo(config: DPOConfig) -> str:
    """Train as `config` says; returns the output folder (imports the training stack lazily)."""
    from align.dpo.trainer import train_dpo as _train

    return _train(config)
