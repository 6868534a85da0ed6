"""Honest reward-model evaluation: accuracy, by margin, ties, calibration and length bias.

`align reward eval --model DIR --data FILE [--format ...] [--json] [--plot reliability.png]`
"""

from __future__ import annotations

import math
from typing import Sequence

from foundation.records import PreferenceRecord
from foundation.stats import sigmoid

__all__ = ["evaluate_records", "evaluate_file", "expected_calibration_error", "reliability_plot"]


def _text_length(messages) -> int:
    return sum(len(m["content"]) for m in messages)


def expected_calibration_error(probs: Sequence[float], outcomes: Sequence[int], bins: int = 10):
    """ECE = Σ_b |B_b|/N · |mean(p) − mean(y)| over equal-width bins of p. Returns (ece, bin table)."""
    table = []
    n = len(probs)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, p in enumerate(probs) if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        if not idx:
            continue
        conf = sum(probs[i] for i in idx) / len(idx)
        acc = sum(outcomes[i] for i in idx) / len(idx)
        ece += len(idx) / n * abs(conf - acc)
        table.append({"bin": [lo, hi], "count": len(idx), "confidence": conf, "accuracy": acc})
    return ece, table


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    if n < 2:
        return float("nan")
    mx, my = sum(x) / n, sum(y) / n
    sx = math.sqrt(sum((a - mx) ** 2 for a in x))
    sy = math.sqrt(sum((b - my) ** 2 for b in y))
    if sx == 0 or sy == 0:
        return float("nan")
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / (sx * sy)


def evaluate_records(scorer, records: list[PreferenceRecord], batch_size: int = 32) -> dict:
    """`scorer` is anything with `score(prompts, responses)`: a RewardModel or a RewardEnsemble."""
    prompts = [r.prompt for r in records] * 2
    responses = [r.chosen for r in records] + [r.rejected for r in records]
    scores = scorer.score(prompts, responses, batch_size=batch_size)
    n = len(records)
    r_c, r_r = scores[:n], scores[n:]
    p = [sigmoid(a - b) for a, b in zip(r_c, r_r)]
    pref = [i for i, r in enumerate(records) if not r.tie]
    ties = [i for i, r in enumerate(records) if r.tie]
    correct = {i: r_c[i] > r_r[i] for i in pref}
    report: dict = {"pairs": len(pref), "ties": len(ties),
                    "accuracy": sum(correct.values()) / len(pref) if pref else float("nan")}
    buckets: dict[str, list[bool]] = {}
    for i in pref:
        m = records[i].margin
        key = "0" if m == 0 else "(0, 0.5]" if m <= 0.5 else "(0.5, 1]" if m <= 1 else ">1"
        buckets.setdefault(key, []).append(correct[i])
    report["accuracy_by_margin"] = {k: {"pairs": len(v), "accuracy": sum(v) / len(v)}
                                    for k, v in sorted(buckets.items())}
    if ties:
        # A tie "agrees" when the model is close to indifferent: P(a ≻ b) within 0.4-0.6.
        report["tie_agreement"] = sum(abs(p[i] - 0.5) <= 0.1 for i in ties) / len(ties)
        report["tie_mean_abs_p_minus_half"] = sum(abs(p[i] - 0.5) for i in ties) / len(ties)
    # Calibration over both orientations of each pair, so outcomes are 1 and 0 in equal number.
    probs = [p[i] for i in pref] + [1 - p[i] for i in pref]
    outcomes = [1] * len(pref) + [0] * len(pref)
    report["ece"], report["reliability"] = expected_calibration_error(probs, outcomes)
    lengths = [_text_length(r.chosen) for r in records] + [_text_length(r.rejected) for r in records]
    report["length_reward_correlation"] = _pearson(lengths, scores)
    shorter = [i for i in pref if _text_length(records[i].chosen) < _text_length(records[i].rejected)]
    report["accuracy_chosen_shorter"] = {"pairs": len(shorter),
                                         "accuracy": (sum(correct[i] for i in shorter) / len(shorter)
                                                      if shorter else None)}
    report["reward_mean"] = sum(scores) / len(scores)
    report["reward_std"] = math.sqrt(sum((s - report["reward_mean"]) ** 2 for s in scores) / len(scores))
    return report


def reliability_plot(report: dict, path: str) -> str:
    """A reliability diagram (PNG): predicted P(chosen ≻ rejected) against the observed frequency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    rows = report["reliability"]
    ax.bar([(r["bin"][0] + r["bin"][1]) / 2 for r in rows], [r["accuracy"] for r in rows], width=0.09,
           alpha=0.7, label="observed")
    ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", color="C1",
            label="bin mean")
    ax.set(xlabel="predicted P(chosen ≻ rejected)", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1),
           title=f"accuracy {report['accuracy']:.3f}, ECE {report['ece']:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate_file(model_dir: str, data: str, format: str = "auto", *, plot: str | None = None,
                  batch_size: int = 32, skip_invalid: bool = False) -> dict:
    from foundation.readers import read_preferences
    from reward.ensemble import load_scorer

    records = read_preferences(data, format, skip_invalid=skip_invalid).records
    report = evaluate_records(load_scorer(model_dir), records, batch_size=batch_size)
    report.update({"model": model_dir, "data": data})
    if plot:
        report["reliability_png"] = reliability_plot(report, plot)
    return report
