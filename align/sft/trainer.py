"""`align sft`: TRL's SFTTrainer on prompt/completion rows, LoRA or QLoRA on our loaded policy."""

from __future__ import annotations

from align.fused_head import score_labelled_positions_only
from align.policy import load_policy
from align.sft.config import SFTConfig
from align.sft.data import read_sft_examples
from foundation.errors import DataError
from foundation.training import last_checkpoint, save_trained, trainer_arguments

__all__ = ["train_sft"]


def train_sft(config: SFTConfig) -> str:
    import trl
    from datasets import Dataset

    rows = read_sft_examples(config.data, config.format, skip_invalid=config.skip_invalid,
                             max_samples=config.max_samples)
    if not rows:
        raise DataError(f"{config.data}: no usable examples for SFT.")
    from transformers import set_seed

    set_seed(config.seed)  # before the adapter is initialised: the same run twice gives the same weights
    model, tokenizer = load_policy(config)
    args = trl.SFTConfig(**trainer_arguments(config), max_length=config.max_length, packing=config.packing,
                         completion_only_loss=True)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer)
    score_labelled_positions_only(trainer.model)
    trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    return save_trained(trainer, tokenizer, config)
