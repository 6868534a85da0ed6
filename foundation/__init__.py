"""foundation: what every package of the toolkit shares, at the bottom of the import graph.

    errors.py      the exceptions (`AlignError` and its tree)
    recipe.py      the one parser: YAML recipe + `--field value` flags into a config dataclass
    options.py     the option dataclasses that configs are composed from (model, data, training)
    models.py      model resolution and loading: hub ids, folders, `builtin:` aliases, LoRA, 4/8-bit
    training.py    what our 🤗-Trainer-based trainers share: arguments, checkpoints, saving
    records.py     the preference record (the contract between packages) and JSON lines
    readers.py     preference data in: HH-RLHF, K-way, JSONL/CSV/parquet, saved datasets
    candidates.py  what `align generate` writes, and prompt files
    judges.py      the judge interface (`vader` built in, `module:function` plugs in)
    stats.py       small statistics (the logistic function)

It imports none of `labeling_app`, `reward` or `align`. Importing it is light: torch and
transformers load inside the functions.
"""

from foundation.candidates import Candidate, CandidateSet, read_candidates, read_prompts, write_candidates
from foundation.errors import AlignError, ConfigError, DataError, ModelError
from foundation.judges import Judge, load_judge
from foundation.models import BUILTIN_MODELS, cache_dir, load_tokenizer, resolve_model
from foundation.options import DataOptions, ModelOptions, TrainOptions
from foundation.readers import PreferenceData, read_preferences
from foundation.recipe import load_config
from foundation.records import PreferenceRecord, as_chat, to_hf_dataset, write_jsonl

__all__ = [
    "AlignError", "ConfigError", "DataError", "ModelError",
    "PreferenceRecord", "PreferenceData", "read_preferences", "write_jsonl", "to_hf_dataset", "as_chat",
    "load_config", "ModelOptions", "DataOptions", "TrainOptions",
    "BUILTIN_MODELS", "cache_dir", "resolve_model", "load_tokenizer",
    "Candidate", "CandidateSet", "read_candidates", "write_candidates", "read_prompts",
    "Judge", "load_judge",
]
