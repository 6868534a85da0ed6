"""reward: reward models only.

    model.py        `RewardModel`: a scalar head on a causal-LM or encoder backbone; text-level `score`
    backbone.py     loading that backbone (through `foundation.models`)
    loss.py         the Bradley-Terry loss with margins and ties (pure functions)
    config.py       `RewardConfig`, what `align reward train` takes
    trainer.py      training (and ensembles of N seeds)
    evaluate.py     accuracy, by margin, ties, calibration, length bias
    ensemble.py     `RewardEnsemble`, and `load_scorer` for a model or an ensemble folder
    uncertainty.py  the uncertainty active selection uses, and its priority hook for the store
    functions.py    reward functions by name for PPO/GRPO (`vader`, a folder, `module:function`)

It imports `foundation` only. Importing it is light: torch and transformers load inside the functions.
"""

from reward.backbone import load_reward_backbone
from reward.config import RewardConfig
from reward.ensemble import RewardEnsemble
from reward.functions import load_reward_function
from reward.model import RewardModel
from reward.uncertainty import pair_uncertainty, uncertainty_priority

__all__ = [
    "RewardModel", "RewardEnsemble", "RewardConfig", "train_reward", "load_reward_backbone",
    "load_reward_function", "pair_uncertainty", "uncertainty_priority",
]


def train_reward(config: RewardConfig) -> str:
    """Train a reward model (or an ensemble) as `config` says; returns the output folder."""
    from reward.trainer import train_reward as _train

    return _train(config)
