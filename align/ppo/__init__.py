"""PPO, ours (TRL removed its PPOTrainer in 1.13): losses in `loss.py`, the trainer in `trainer.py`."""

from align.ppo.config import PPOConfig

__all__ = ["PPOConfig", "train_ppo"]


def train_ppo(config: PPOConfig, *, prompts: list | None = None) -> str:
    """Train as `config` says; returns the output folder (imports the training stack lazily)."""
    from align.ppo.trainer import train_ppo as _train

    return _train(config, prompts=prompts)
