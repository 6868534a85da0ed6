"""Small statistics every package uses: the logistic function of Bradley-Terry preferences."""

from __future__ import annotations

import math

__all__ = ["sigmoid"]


def sigmoid(x: float) -> float:
    """σ(x) = 1 / (1 + e^−x), the Bradley-Terry P(a ≻ b) for a reward gap x; safe for any float."""
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))
