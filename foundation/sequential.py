"""An anytime-valid 95% interval for a win rate that is watched while labels arrive.

A fixed-n interval (Wilson's) is honest only when n is chosen before the data: stopping an evaluation
as soon as it "looks decisive" and reading a fixed-n interval then declares far more false winners than
5%. A *confidence sequence* holds at every n at once, so a loop may look after every label and stop
whenever the interval leaves ½.

This one is the betting confidence sequence of Waudby-Smith & Ramdas, "Estimating means of bounded random
variables by betting" (JRSS-B 2024, https://arxiv.org/abs/2010.09686), for observations in [0, 1] (a
win 1, a tie ½, a loss 0): for each candidate mean m a gambler bets on x − m with the hedged capital
process (their Eq. 26, θ = ½) and the predictable plug-in bet λ_t (their Eq. 27, truncated at c = ½);
m leaves the sequence once the capital reaches 1/α (Ville's inequality). We keep the running
intersection, over a grid of 999 candidate means.
"""

from __future__ import annotations

import math

__all__ = ["WinRateSequence"]

_STEP = 0.001               # the grid of candidate means: 0.001, 0.002, ..., 0.999
_TRUNCATION = 0.5           # c: a bet never risks more than half the capital


class WinRateSequence:
    """The win rate of a stream of outcomes in [0, 1] with its anytime-valid (1 − α) interval.

    >>> seq = WinRateSequence()
    >>> for x in outcomes:
    ...     seq.update(x)
    ...     if seq.decided():
    ...         break
    >>> seq.mean, seq.interval, seq.n
    """

    def __init__(self, alpha: float = 0.05, horizon: int | None = None):
        """`horizon`: the most outcomes that will be seen, when known (an evaluation's `eval_labels`): the
        bets are sized for it (the paper's Eq. 27 with t·log(1 + t) replaced by the horizon, valid at every
        n all the same), a narrower interval there; None sizes them for an open-ended stream."""
        import numpy as np

        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
        self.alpha, self.horizon = alpha, horizon
        self.n = 0
        self.total = 0.0
        self._grid = np.arange(1, round(1 / _STEP)) * _STEP
        self._log_up = np.zeros_like(self._grid)      # log K⁺_t(m): betting that the mean is above m
        self._log_down = np.zeros_like(self._grid)    # log K⁻_t(m): betting that it is below m
        self._alive = np.ones(len(self._grid), dtype=bool)  # m in every interval so far (running ∩)
        self._var_hat = 0.25                          # σ̂²_{t−1} of Eq. 27, regularised
        self._sq_sum = 0.25
        self.interval = (0.0, 1.0)

    @property
    def mean(self) -> float:
        """The observed win rate (ties count half); ½ before any label."""
        return self.total / self.n if self.n else 0.5

    def update(self, x: float) -> None:
        """Add one outcome: 1 a win, ½ a tie, 0 a loss (any value in [0, 1])."""
        import numpy as np

        if not 0.0 <= x <= 1.0:
            raise ValueError(f"an outcome must be in [0, 1], got {x}.")
        m = self._grid
        t = self.n + 1
        scale = self.horizon if self.horizon else t * math.log(1 + t)
        bet = math.sqrt(2 * math.log(2 / self.alpha) / (self._var_hat * scale))
        self._log_up += np.log1p(np.minimum(bet, _TRUNCATION / m) * (x - m))
        self._log_down += np.log1p(-np.minimum(bet, _TRUNCATION / (1 - m)) * (x - m))
        # hedged capital max(θK⁺, (1 − θ)K⁻), θ = ½, below the threshold 1/α (Ville's inequality)
        self._alive &= np.maximum(self._log_up, self._log_down) + math.log(0.5) < math.log(1 / self.alpha)
        self.n, self.total = t, self.total + x
        # Eq. 27's running estimates, for the next bet (predictable: they use x_1..x_t only)
        mean_hat = (0.5 + self.total) / (t + 1)
        self._sq_sum += (x - mean_hat) ** 2
        self._var_hat = self._sq_sum / (t + 1)
        inside = np.flatnonzero(self._alive)
        if len(inside) == 0:            # every candidate left (possible only by chance): the last point
            point = min(max(self.mean, self.interval[0]), self.interval[1])
            self.interval = (point, point)
        else:                           # widened by a grid step: the true edge lies between two points
            self.interval = (max(0.0, float(m[inside[0]]) - _STEP), min(1.0, float(m[inside[-1]]) + _STEP))

    def decided(self, null: float = 0.5) -> bool:
        """Whether the interval has left `null`: the win rate is above it, or below, at level α, whenever
        one looks."""
        low, high = self.interval
        return low > null or high < null
