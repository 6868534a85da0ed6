"""Small statistics every package uses: the logistic function of Bradley-Terry preferences, and the
95% intervals that every efficacy figure carries (a win rate over n prompts, a mean KL)."""

from __future__ import annotations

import math
import statistics
from typing import Sequence

__all__ = ["sigmoid", "wilson_interval", "mean_interval", "intervals_overlap", "dense_ranks"]

Z95 = 1.959964


def sigmoid(x: float) -> float:
    """σ(x) = 1 / (1 + e^−x), the Bradley-Terry P(a ≻ b) for a reward gap x; safe for any float."""
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def wilson_interval(rate: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `rate` observed on `n` trials (ties as halves count
    as half a success each). Unlike the normal approximation it stays inside [0, 1] and is honest at
    small n and near 0 or 1 (Wilson 1927; Brown, Cai & DasGupta 2001). Returns (lower, upper)."""
    if n <= 0:
        return (0.0, 1.0)
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean: mean ± z·s/√n (n ≥ 2; else the point twice)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return (mean, mean)
    half = z * statistics.stdev(values) / math.sqrt(len(values))
    return (mean - half, mean + half)


def intervals_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two (lower, upper) intervals share any point."""
    return a[0] <= b[1] and b[0] <= a[1]


def dense_ranks(values, *, higher_first: bool = True) -> list[int]:
    """1-based ranks with ties sharing a rank and no gaps: [3, 1, 3] -> [1, 2, 1] (higher first), or
    with `higher_first=False` [1, 1, 3] -> [1, 1, 2]."""
    levels = sorted(set(values), reverse=higher_first)
    return [levels.index(v) + 1 for v in values]
