"""Preference pairs a reward model labels itself: among each prompt's candidate responses, its best
against its worst (online DPO's pairs, as in RLHFlow's iterative DPO), beside the human labels."""

from __future__ import annotations

from foundation.candidates import CandidateSet
from foundation.records import PreferenceRecord
from foundation.stats import sigmoid

__all__ = ["best_vs_worst"]


def best_vs_worst(scorer, sets: list[CandidateSet], *, min_confidence: float = 0.5,
                  source: str = "reward model") -> list[PreferenceRecord]:
    """For every candidate set, the scorer's best and worst response as a preference record, when it
    prefers the best with P = σ(r_best − r_worst) ≥ `min_confidence` (0.5: every set whose responses
    differ). Empty responses are left out."""
    flat = [(i, c.content) for i, s in enumerate(sets) for c in s.responses if c.content.strip()]
    scores = scorer.score([sets[i].prompt for i, _ in flat], [text for _, text in flat])
    by_set: dict[int, list[tuple[float, str]]] = {}
    for (i, text), score in zip(flat, scores):
        by_set.setdefault(i, []).append((score, text))
    records = []
    for i, scored in by_set.items():
        (low, worst), (high, best) = min(scored), max(scored)
        if best != worst and sigmoid(high - low) >= min_confidence:
            records.append(PreferenceRecord(
                prompt=sets[i].prompt, chosen=[{"role": "assistant", "content": best}],
                rejected=[{"role": "assistant", "content": worst}], labeler="reward-model", source=source))
    return records
