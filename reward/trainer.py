"""`align reward train`: Bradley-Terry training with margins and ties on a 🤗 Trainer.

TRL's RewardTrainer drops ties and drops over-long rows; ours keeps both (ties through the loss in
reward/loss.py, long pairs truncated from the left of the prompt and counted). Chosen and rejected
go through the model in one forward pass of 2B rows, and batches group pairs of similar length.
A rankings file (the labeling app's `rankings.jsonl`) trains InstructGPT's way: each response scored
once per ranking, the loss over all its pairs (reward/rankings.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import DataError
from foundation.readers import read_preferences
from foundation.records import PreferenceRecord
from foundation.training import (
    is_main_process,
    last_checkpoint,
    seeded_length_grouped_sampler,
    trainer_arguments,
)
from reward.config import RewardConfig
from reward.loss import bradley_terry_loss, ranking_loss
from reward.model import RewardModel, encode_pair_side, right_pad
from reward.rankings import RankingCollator, encode_rankings, is_rankings_file, read_rankings

__all__ = ["train_reward", "encode_pairs", "PairCollator"]


@dataclass
class EncodedPairs:
    rows: list[dict]
    truncated: int
    dropped_ties: int


def encode_pairs(tokenizer, records: list[PreferenceRecord], max_length: int, *, margin_scale: float = 1.0,
                 use_ties: bool = True) -> EncodedPairs:
    rows, truncated, dropped = [], 0, 0
    for r in records:
        if r.tie and not use_ties:
            dropped += 1
            continue
        c, tc = encode_pair_side(tokenizer, r.prompt, r.chosen, max_length)
        j, tj = encode_pair_side(tokenizer, r.prompt, r.rejected, max_length)
        truncated += tc or tj
        rows.append({"chosen_ids": c, "rejected_ids": j, "margin": 0.0 if r.tie else r.margin * margin_scale,
                     "tie": float(r.tie), "length": max(len(c), len(j))})
    return EncodedPairs(rows, truncated, dropped)


class PairCollator:
    """Pairs -> one right-padded batch of 2B rows (chosen first, then rejected) plus margin and tie (B,)."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        ids, mask = right_pad([f["chosen_ids"] for f in features] + [f["rejected_ids"] for f in features],
                              self.pad)
        return {"input_ids": ids, "attention_mask": mask,
                "margin": torch.tensor([f["margin"] for f in features], dtype=torch.float),
                "tie": torch.tensor([f["tie"] for f in features], dtype=torch.float)}


def _trainer_class():
    from transformers import Trainer

    class PairwiseRewardTrainer(Trainer):
        center_coefficient = 0.0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            rewards = model(input_ids=inputs["input_ids"],
                            attention_mask=inputs["attention_mask"]).logits[:, 0]
            if "ranks" in inputs:                               # K-way rankings: all pairs at once
                loss = ranking_loss(rewards.float(), inputs["sizes"].tolist(), inputs["ranks"])
                if self.center_coefficient:
                    loss = loss + self.center_coefficient * (rewards.float() ** 2).mean()
            else:
                r_chosen, r_rejected = rewards.float().chunk(2)  # (B,), (B,)
                loss = bradley_terry_loss(r_chosen, r_rejected, inputs["margin"], inputs["tie"],
                                          self.center_coefficient)
            return (loss, {"rewards": rewards}) if return_outputs else loss

        def _get_train_sampler(self, train_dataset=None):
            return seeded_length_grouped_sampler(self, train_dataset or self.train_dataset)

    return PairwiseRewardTrainer


def train_reward(config: RewardConfig) -> str:
    """Train (an ensemble of) reward model(s); returns the output folder."""
    if is_rankings_file(config.data):
        records, summary = read_rankings(config.data, config.max_samples), None
    else:
        data = read_preferences(config.data, config.format, skip_invalid=config.skip_invalid)
        records = data.records[: config.max_samples] if config.max_samples else data.records
        summary = data.summary()
    if not records:
        raise DataError(f"{config.data}: no preference records to train on.")
    out = Path(config.output_dir)
    summaries = []
    for k in range(config.ensemble):
        member_dir = out if config.ensemble == 1 else out / f"member-{k}"
        summaries.append(train_one(config, records, str(member_dir), config.seed + k))
    if not is_main_process():             # rank 0 writes the ensemble index and the report
        return str(out)
    if config.ensemble > 1:
        (out / "ensemble.json").write_text(
            json.dumps({"members": [f"member-{k}" for k in range(config.ensemble)]}))
    report = {"data": summary or {"rankings": len(records)}, "members": summaries}
    if config.eval_data:
        from reward.evaluate import evaluate_file

        report["eval"] = evaluate_file(str(out), config.eval_data, config.format,
                                       plot=str(out / "reliability.png"))
        print(f"held-out accuracy {report['eval']['accuracy']:.3f} on {report['eval']['pairs']} pairs")
    (out / "train_report.json").write_text(json.dumps(report, indent=2))
    _write_card(config, out, report, len(records))
    return str(out)


def _write_card(config: RewardConfig, out: Path, report: dict, records: int) -> None:
    from foundation.cards import Lineage, changed_settings, write_cards
    from foundation.stats import wilson_interval

    ev = report.get("eval")
    results = [{"name": "held-out accuracy", "value": ev["accuracy"], "n": ev["pairs"],
                "interval": list(wilson_interval(ev["accuracy"], ev["pairs"])),
                "dataset": str(config.eval_data)}] if ev else []
    write_cards(out, Lineage(
        method="reward model (Bradley-Terry)"
               + (f", ensemble of {config.ensemble}" if config.ensemble > 1 else ""),
        base_model=config.model, adapter=False, data={"file": config.data, "records": records},
        settings=changed_settings(config), results=results))


def _encoded(config: RewardConfig, tokenizer, records) -> tuple[list[dict], object, int, int]:
    """(dataset rows, collator, pairs, truncated) for preference records or rankings."""
    from reward.rankings import Ranking

    if records and isinstance(records[0], Ranking):
        rows, truncated = encode_rankings(tokenizer, records, config.max_length)
        pairs = sum(len(r.ranks) * (len(r.ranks) - 1) // 2 for r in records)
        print(f"reward data: {len(rows)} rankings ({pairs} pairs, each response scored once per ranking), "
              f"{truncated} responses truncated to {config.max_length} tokens")
        return rows, RankingCollator(tokenizer.pad_token_id), pairs, truncated
    enc = encode_pairs(tokenizer, records, config.max_length, margin_scale=config.margin_scale,
                       use_ties=config.use_ties)
    print(f"reward data: {len(enc.rows)} pairs ({sum(r['tie'] > 0 for r in enc.rows)} ties), "
          f"{enc.truncated} truncated to {config.max_length} tokens (prompt start dropped)"
          + (f", {enc.dropped_ties} ties dropped (use_ties: false)" if enc.dropped_ties else ""))
    return enc.rows, PairCollator(tokenizer.pad_token_id), len(enc.rows), enc.truncated


def train_one(config: RewardConfig, records: list, output_dir: str, seed: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainingArguments, set_seed

    from reward.backbone import load_reward_backbone

    set_seed(seed)
    model, tokenizer = load_reward_backbone(config)
    if config.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    rows, collator, pairs, truncated = _encoded(config, tokenizer, records)
    args = TrainingArguments(**{**trainer_arguments(config), "output_dir": output_dir, "seed": seed,
                                "data_seed": seed}, remove_unused_columns=False,
                             train_sampling_strategy="group_by_length", length_column_name="length",
                             warmup_steps=config.warmup_ratio, lr_scheduler_type="linear")
    trainer = _trainer_class()(model=model, args=args, train_dataset=Dataset.from_list(rows),
                               data_collator=collator)
    trainer.center_coefficient = config.center_rewards_coefficient
    result = trainer.train(resume_from_checkpoint=last_checkpoint(output_dir) if config.resume else None)
    if trainer.is_world_process_zero():
        RewardModel(trainer.model, tokenizer, config.max_length).save_pretrained(output_dir)
    return {"output_dir": output_dir, "seed": seed, "pairs": pairs, "truncated": truncated,
            "train_loss": result.training_loss, "steps": result.global_step,
            "train_seconds": result.metrics.get("train_runtime")}
