"""Label quality and throughput figures: what the admin view, `align label stats` and the export's
dataset card show.

- Krippendorff's alpha (nominal, over A / B / tie / both_bad in stored order) on pairs with at least
  two live labels, from the maintained `krippendorff` package.
- Raw pairwise agreement: over all pairs of labels on the same pair, the share that agree.
- Each labeler's agreement with the majority of the *other* labels on the same pairs.
- Position bias: the share of A/B picks that went to the left response (0.5 = none).
- Gold accuracy per labeler: the share of their gold-pair labels that match the known answer.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from labeling_app.store import CHOICES, Label, LabelStore

__all__ = ["label_stats", "majority", "krippendorff_alpha", "agreement_text", "format_stats"]


def majority(choices: list[str]) -> tuple[str | None, float]:
    """The most frequent choice and its share; None when the top two are level."""
    if not choices:
        return None, 0.0
    (top, n), *rest = Counter(choices).most_common(2) + [(None, 0)]
    if rest[0][1] == n:
        return None, n / len(choices)
    return top, n / len(choices)


def krippendorff_alpha(by_pair: dict[str, list[Label]]) -> float | None:
    """Nominal alpha over pairs with ≥ 2 labels; None when there is too little to compute it."""
    import krippendorff
    import numpy as np

    multi = [labels for labels in by_pair.values() if len(labels) >= 2]
    if not multi:
        return None
    labelers = sorted({lab.labeler for labels in multi for lab in labels})
    row = {name: i for i, name in enumerate(labelers)}
    data = np.full((len(labelers), len(multi)), np.nan)
    for j, labels in enumerate(multi):
        for lab in labels:
            data[row[lab.labeler], j] = CHOICES.index(lab.choice)
    if len(np.unique(data[~np.isnan(data)])) < 2:
        return 1.0   # everyone chose the same everywhere: perfect agreement (the formula divides by 0)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def label_stats(store: LabelStore, *, batch: str | None = None) -> dict[str, Any]:
    """Every figure of the admin view, as plain JSON-ready values."""
    pairs = store.pairs(batch=batch)
    gold = {p.pair_id: p.gold_choice for p in pairs if p.gold_choice}
    wanted = {p.pair_id for p in pairs}
    labels = [lab for lab in store.labels() if lab.pair_id in wanted]
    by_pair: dict[str, list[Label]] = defaultdict(list)
    for lab in labels:
        if lab.pair_id not in gold:
            by_pair[lab.pair_id].append(lab)

    agree = total = 0
    for group in by_pair.values():
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                total += 1
                agree += group[i].choice == group[j].choice

    per_labeler: dict[str, dict[str, Any]] = defaultdict(lambda: {"labels": 0, "seconds_median": None,
                                                                  "agreement_with_majority": None,
                                                                  "gold_accuracy": None, "gold_labels": 0})
    seconds: dict[str, list[float]] = defaultdict(list)
    vs_majority: dict[str, list[bool]] = defaultdict(list)
    gold_hits: dict[str, list[bool]] = defaultdict(list)
    for lab in labels:
        per_labeler[lab.labeler]["labels"] += 1
        seconds[lab.labeler].append(lab.seconds)
        if lab.pair_id in gold:
            gold_hits[lab.labeler].append(lab.choice == gold[lab.pair_id])
    for group in by_pair.values():
        for lab in group:
            top, _ = majority([o.choice for o in group if o is not lab])
            if top is not None:
                vs_majority[lab.labeler].append(lab.choice == top)
    for name, entry in per_labeler.items():
        s = sorted(seconds[name])
        entry["seconds_median"] = round(s[len(s) // 2], 2)
        if vs_majority[name]:
            entry["agreement_with_majority"] = round(sum(vs_majority[name]) / len(vs_majority[name]), 4)
        if gold_hits[name]:
            entry["gold_accuracy"] = round(sum(gold_hits[name]) / len(gold_hits[name]), 4)
            entry["gold_labels"] = len(gold_hits[name])

    sided = [lab.shown_choice for lab in labels if lab.choice in ("A", "B")]
    per_day = Counter(time.strftime("%Y-%m-%d", time.localtime(lab.created_at)) for lab in labels)
    per_hour = Counter(time.strftime("%Y-%m-%d %H:00", time.localtime(lab.created_at)) for lab in labels)
    counts = Counter(len(by_pair.get(p.pair_id, [])) for p in pairs if not p.gold_choice)
    alpha = krippendorff_alpha(by_pair)
    return {
        "labels": len(labels),
        "retractions": len(store.retracted_ids()),
        "pairs": len(pairs) - len(gold),
        "gold_pairs": len(gold),
        "pairs_completed": sum(n for c, n in counts.items() if c >= store.k),
        "labels_needed": sum(max(0, store.k - c) * n for c, n in counts.items()),
        "k": store.k,
        "labelers": len(per_labeler),
        "krippendorff_alpha": None if alpha is None else round(alpha, 4),
        "pairwise_agreement": round(agree / total, 4) if total else None,
        "position_bias_left": round(sum(c == "A" for c in sided) / len(sided), 4) if sided else None,
        "choices": dict(Counter(lab.choice for lab in labels)),
        "per_labeler": dict(sorted(per_labeler.items())),
        "per_day": dict(sorted(per_day.items())),
        "per_hour": dict(sorted(per_hour.items())),
    }


def agreement_text(stats: dict[str, Any], bold: str = "") -> str:
    """Agreement between labelers in words: Krippendorff's α and raw pairwise agreement, or why they are
    not measured yet (`bold`: markdown emphasis around the figures)."""
    if stats["krippendorff_alpha"] is None:
        return "agreement not measured yet: no pair has two labels (k ≥ 2 measures it)"
    return (f"Krippendorff's α {bold}{stats['krippendorff_alpha']}{bold} · pairwise agreement "
            f"{bold}{stats['pairwise_agreement']}{bold}")


def format_stats(stats: dict[str, Any]) -> str:
    """The admin figures as terminal text."""
    def show(x):
        return "n/a" if x is None else x

    lines = [f"labels {stats['labels']} (retracted {stats['retractions']}), pairs {stats['pairs']} "
             f"(+{stats['gold_pairs']} gold), completed {stats['pairs_completed']} at k={stats['k']}, "
             f"labels still needed {stats['labels_needed']}",
             f"{agreement_text(stats)}, left-pick share {show(stats['position_bias_left'])}",
             "", f"{'labeler':<20}{'labels':>8}{'median s':>10}{'vs majority':>13}{'gold acc':>10}"]
    for name, e in stats["per_labeler"].items():
        lines.append(f"{name:<20}{e['labels']:>8}{show(e['seconds_median']):>10}"
                     f"{show(e['agreement_with_majority']):>13}{show(e['gold_accuracy']):>10}")
    if stats["per_day"]:
        lines += ["", "labels per day: " + ", ".join(f"{d} {n}" for d, n in stats["per_day"].items())]
    return "\n".join(lines)
