"""reward: reward models, and what every package shares (the preference record, its readers, the
config parser, model loading and the exceptions). It imports neither `align` nor `labeling_app`.

Importing this package is light: torch and transformers load inside the functions.
"""

from reward.backbone import load_reward_backbone
from reward.candidates import Candidate, CandidateSet, read_candidates, read_prompts, write_candidates
from reward.config import RewardConfig
from reward.ensemble import RewardEnsemble
from reward.model import RewardModel
from reward.configuration import load_config
from reward.errors import AlignError, ConfigError, DataError, ModelError
from reward.hub import BUILTIN_MODELS, cache_dir, load_tokenizer, resolve_model
from reward.judges import load_judge, load_reward_function
from reward.options import DataOptions, ModelOptions, TrainOptions
from reward.readers import PreferenceData, read_preferences
from reward.records import PreferenceRecord, to_hf_dataset, write_jsonl

__all__ = [
    "AlignError", "ConfigError", "DataError", "ModelError",
    "PreferenceRecord", "PreferenceData", "read_preferences", "write_jsonl", "to_hf_dataset",
    "load_config", "ModelOptions", "DataOptions", "TrainOptions",
    "BUILTIN_MODELS", "cache_dir", "resolve_model", "load_tokenizer", "load_reward_backbone",
    "RewardModel", "RewardEnsemble", "RewardConfig", "train_reward",
    "Candidate", "CandidateSet", "read_candidates", "write_candidates", "read_prompts",
    "load_judge", "load_reward_function",
]


def train_reward(config: RewardConfig) -> str:
    """Train a reward model (or an ensemble) as `config` says; returns the output folder."""
    from reward.trainer import train_reward as _train

    return _train(config)
