"""`align dpo`: TRL's DPOTrainer on our LoRA policy, with what makes it faster on one machine.

- The reference is the base with the adapter disabled (TRL does this for a PeftModel): one model in memory.
- Reference log-probs are computed once before training when every pair is seen at least twice,
  instead of one extra reference forward per step.
- Pairs of similar length are batched together (length-grouped sampling), so little compute goes to padding.
- The prompt of a pair is forwarded once for both responses (prefix sharing, `align.dpo.prefix_sharing`).
- The output layer projects only the positions that predict a response token
  (`align.fused_head`; TRL does so on Triton devices only).
- Under bf16 autocast the frozen base loads in bf16 (`foundation.precision.frozen_base_dtype`).
- Ties are dropped (or kept) and pairs below `min_margin` filtered, as configured.
"""

from __future__ import annotations

import math
from dataclasses import replace

from align.dpo.config import LOSS_TYPES, DPOConfig
from align.fused_head import score_labelled_positions_only
from align.policy import load_policy
from foundation.errors import DataError
from foundation.precision import frozen_base_dtype
from foundation.readers import read_preferences
from foundation.training import (
    last_checkpoint,
    save_trained,
    seeded_length_grouped_sampler,
    trainer_arguments,
)

__all__ = ["train_dpo", "preference_rows"]


def preference_rows(config: DPOConfig) -> tuple[list[dict], dict]:
    """TRL conversational rows from the data, and counts of what was left out and why."""
    data = read_preferences(config.data, config.format, skip_invalid=config.skip_invalid)
    rows, counts = [], {"ties_dropped": 0, "below_min_margin": 0,
                        "skipped_invalid": sum(data.skipped.values())}
    for r in data.records:
        if r.tie and config.ties == "drop":
            counts["ties_dropped"] += 1
            continue
        if not r.tie and r.margin < config.min_margin:
            counts["below_min_margin"] += 1
            continue
        rows.append({"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected})
    if config.max_samples:
        rows = rows[: config.max_samples]
    if not rows:
        raise DataError(f"{config.data}: no pairs left to train on ({counts}).")
    return rows, counts


def _precompute(config: DPOConfig, n_rows: int) -> bool:
    """Precomputing costs one reference forward per pair (measured here: about what the per-step
    reference forward costs), so it pays only when pairs are visited more than once."""
    if config.precompute_ref_log_probs != "auto":
        return config.precompute_ref_log_probs == "true"
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
    steps_per_epoch = math.ceil(n_rows / per_step)
    planned = config.max_steps if config.max_steps > 0 else steps_per_epoch * config.num_train_epochs
    return planned >= 2 * steps_per_epoch


def _grouped_dpo_trainer():
    import trl

    class GroupedDPOTrainer(trl.DPOTrainer):
        """Keeps the `length` column through the Trainer's column pruning, for the length-grouped sampler."""

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "length" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "length"]

        def _get_train_sampler(self, train_dataset=None):
            return seeded_length_grouped_sampler(self, train_dataset or self.train_dataset)

    return GroupedDPOTrainer


def build_dpo_trainer(config: DPOConfig):
    """The DPO trainer for `config`, ready to `train()` (reference log-probs already computed if chosen)."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import set_seed

    rows, counts = preference_rows(config)
    precompute = _precompute(config, len(rows))
    print(f"dpo data: {len(rows)} pairs; left out: {counts}; reference log-probs "
          f"{'precomputed once' if precompute else 'computed per step'}")
    set_seed(config.seed)  # before the adapter is initialised: the same run twice gives the same weights
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_policy(replace(config, dtype=frozen_base_dtype(config, config.mixed_precision,
                                                                          device)))
    args = trl.DPOConfig(
        **trainer_arguments(config), beta=config.beta, **_losses(config),
        label_smoothing=config.label_smoothing, max_length=config.max_length,
        precompute_ref_log_probs=precompute, train_sampling_strategy="group_by_length",
        length_column_name="length")
    trainer = _grouped_dpo_trainer()(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                     processing_class=tokenizer)
    # The sampler groups by this column: the tokens of each pair's forward (one packed row with prefix
    # sharing, else its longer side).
    ds = trainer.train_dataset
    trainer.train_dataset = ds.add_column("length", [
        len(p) + (len(c) + len(r) + 1 if config.prefix_sharing else max(len(c), len(r)))
        for p, c, r in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"])])
    if config.prefix_sharing:
        from align.dpo.prefix_sharing import PrefixSharingCollator, share_prefixes

        collator = trainer.data_collator
        trainer.data_collator = PrefixSharingCollator(pad_token_id=collator.pad_token_id,
                                                      max_length=collator.max_length,
                                                      pad_to_multiple_of=collator.pad_to_multiple_of)
        share_prefixes(trainer.model)
    score_labelled_positions_only(trainer.model)
    return trainer, tokenizer


def _losses(config: DPOConfig) -> dict:
    """TRL's `loss_type` list and weights: the DPO-family loss, plus the NLL of the chosen responses."""
    if not config.sft_weight:
        return {"loss_type": [LOSS_TYPES[config.loss_type]]}
    return {"loss_type": [LOSS_TYPES[config.loss_type], "sft"], "loss_weights": [1.0, config.sft_weight]}


def train_dpo(config: DPOConfig) -> str:
    trainer, tokenizer = build_dpo_trainer(config)
    trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    return save_trained(trainer, tokenizer, config)
