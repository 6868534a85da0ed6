"""Export: aggregate the live labels of each pair into one preference record, and write

    DIR/preferences.jsonl   every aggregated record, ties included (`tie: true`), in TRL's format
    DIR/dataset/            a 🤗 DatasetDict saved to disk: "train" = the strict preferences (loads and
                            trains unchanged in TRL's DPOTrainer and RewardTrainer), "ties" = the ties
    DIR/labels.jsonl        the raw live labels (audit trail), responses in stored order
    DIR/README.md           a dataset card: counts, agreement, how it was aggregated

Aggregation: the majority choice among a pair's live labels (a level top two: the pair is left out);
"both_bad" majorities are left out (no preference to learn); margin = the mean, over the labels that
agree with the majority, of the strength mapped to [0, 1] (`foundation.records.STRENGTH_MARGINS`).
The A/B order shown to each labeler is undone: choices are stored in the pair's own order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from foundation.records import (
    STRENGTH_MARGINS,
    PreferenceRecord,
    to_hf_dataset,
    write_json_lines,
    write_jsonl,
)
from labeling_app.quality import agreement_text, label_stats, majority
from labeling_app.store import Label, LabelStore
from labeling_app.task_export import export_tasks

__all__ = ["aggregate", "export_dataset", "ExportSummary"]


@dataclass
class ExportSummary:
    out_dir: str
    preferences: int = 0
    ties: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)      # ratings and rankings (task_export.py)

    def __str__(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n) or "none"
        tasks = "".join(f"; {n} {what.replace('_', ' ')}" for what, n in self.tasks.items())
        return (f"exported {self.preferences} preferences and {self.ties} ties to {self.out_dir} "
                f"(left out: {dropped}){tasks}")


def aggregate(store: LabelStore, *, min_labels: int = 1, min_agreement: float = 0.0, batch: str | None = None,
              include_gold: bool = False,
              include_evaluation: bool = False) -> tuple[list[PreferenceRecord], dict[str, int]]:
    """One record per pair that passes the filters; returns (records, counts of pairs left out by reason).
    Evaluation batches (the loop's blind comparisons of policies) are left out unless `include_evaluation`
    or `batch` names one: they judge models and must never train one."""
    by_pair: dict[str, list[Label]] = defaultdict(list)
    for lab in store.labels():
        by_pair[lab.pair_id].append(lab)
    dropped = {"unlabeled": 0, "too few labels": 0, "no majority": 0, "low agreement": 0, "both bad": 0}
    records = []
    for pair in store.pairs(batch=batch, include_gold=include_gold, include_evaluation=include_evaluation):
        labels = by_pair.get(pair.pair_id, [])
        if not labels:
            dropped["unlabeled"] += 1
            continue
        if len(labels) < min_labels:
            dropped["too few labels"] += 1
            continue
        top, share = majority([lab.choice for lab in labels])
        if top is None:
            dropped["no majority"] += 1
            continue
        if share < min_agreement:
            dropped["low agreement"] += 1
            continue
        if top == "both_bad":
            dropped["both bad"] += 1
            continue
        agreeing = [lab for lab in labels if lab.choice == top]
        margin = sum(STRENGTH_MARGINS[lab.strength] for lab in agreeing) / len(agreeing)
        chosen, rejected = ((pair.response_b, pair.response_a) if top == "B"
                            else (pair.response_a, pair.response_b))
        records.append(PreferenceRecord(
            prompt=pair.prompt, chosen=chosen, rejected=rejected,
            margin=0.0 if top == "tie" else round(margin, 4), tie=top == "tie",
            labeler=",".join(sorted(lab.labeler for lab in labels)), pair_id=pair.pair_id,
            shown_order=None, source=pair.source or "labeling_app"))
    return records, dropped


def export_dataset(store: LabelStore, out_dir: str | Path, *, min_labels: int = 1, min_agreement: float = 0.0,
                   batch: str | None = None, include_evaluation: bool = False) -> ExportSummary:
    from datasets import DatasetDict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records, dropped = aggregate(store, min_labels=min_labels, min_agreement=min_agreement, batch=batch,
                                 include_evaluation=include_evaluation)
    prefs = [r for r in records if not r.tie]
    ties = [r for r in records if r.tie]
    write_jsonl(records, out / "preferences.jsonl")
    # One shard per split even when a split is empty (datasets cannot load a split saved with 0 shards).
    DatasetDict({"train": to_hf_dataset(prefs), "ties": to_hf_dataset(ties)}).save_to_disk(
        str(out / "dataset"), num_shards={"train": 1, "ties": 1})
    wanted = {p.pair_id for p in store.pairs(batch=batch, include_evaluation=include_evaluation)}
    write_json_lines(({"id": lab.id, "pair_id": lab.pair_id, "labeler": lab.labeler, "choice": lab.choice,
                       "strength": lab.strength, "rationale": lab.rationale, "shown_order": lab.shown_order,
                       "seconds": round(lab.seconds, 3), "created_at": lab.created_at}
                      for lab in store.labels() if lab.pair_id in wanted), out / "labels.jsonl")
    summary = ExportSummary(str(out), len(prefs), len(ties), dropped, export_tasks(store, out))
    (out / "README.md").write_text(_card(store, summary, label_stats(store, batch=batch), min_labels,
                                         min_agreement), encoding="utf-8")
    return summary


def _card(store: LabelStore, summary: ExportSummary, stats: dict, min_labels: int,
          min_agreement: float) -> str:
    dropped = "\n".join(f"| {why} | {n} |" for why, n in summary.dropped.items())
    return f"""---
task_categories: [text-generation]
tags: [preference, dpo, reward-modeling, align-toolkit]
---
# Preference data exported by align-toolkit's labeling app

Store: `{store.url}`; each pair asked for k = {store.k} labels. Filters: at least {min_labels} label(s),
majority share at least {min_agreement}.

| | count |
|---|---|
| preferences (`dataset/` split `train`) | {summary.preferences} |
| ties (split `ties`, and `tie: true` in preferences.jsonl) | {summary.ties} |
| live labels in the store | {stats['labels']} |
| retracted labels (undo) | {stats['retractions']} |
| labelers | {stats['labelers']} |
{dropped}

Agreement (nominal): {agreement_text(stats)}; share of left picks {stats['position_bias_left']}.

Each record is TRL's conversational preference format (`prompt`, `chosen`, `rejected`) plus `margin`
(mean labeled strength of the majority, 0-1), `tie`, `labeler` (everyone who labeled the pair) and
`pair_id`. Load with `datasets.load_from_disk("dataset")["train"]` for TRL's DPOTrainer or
RewardTrainer, or `reward.read_preferences("preferences.jsonl")` for align-toolkit's trainers.

```json
{json.dumps({k: stats[k] for k in ('labels', 'pairs', 'labelers', 'krippendorff_alpha')})}
```
"""
