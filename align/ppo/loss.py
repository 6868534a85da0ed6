"""PPO's pieces as small pure functions on tensors (no model, no trainer), each unit-tested against
values computed by hand.

Shapes: B sequences, T response tokens; `mask` (B, T) is 1 on real response tokens, 0 on padding.
References: Schulman et al. 2017 (PPO, https://arxiv.org/abs/1707.06347), Schulman et al. 2016 (GAE,
https://arxiv.org/abs/1506.02438), Ziegler et al. 2019 (KL-penalised rewards and the adaptive KL
controller, https://arxiv.org/abs/1909.08593), Huang et al. 2022, "The N Implementation Details of
RLHF with PPO" (whitening, value clipping, per-token KL).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["masked_mean", "masked_var", "whiten", "kl_penalized_rewards", "gae", "policy_loss", "value_loss",
           "AdaptiveKLController", "FixedKLController"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def sampler_kl(sampler_logprobs: torch.Tensor, logprobs: torch.Tensor, mask: torch.Tensor) -> float:
    """KL(sampler ‖ trainer) per token, from the sampled tokens' log-probs under each (k3 estimator:
    exp(r) − 1 − r with r = log π_train − log π_sampler; unbiased and never negative)."""
    r = (logprobs - sampler_logprobs).float()
    return masked_mean(torch.expm1(r) - r, mask).item()


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the real tokens of the whole batch; `shift_mean=False` keeps the mean
    (used for rewards, whose sign matters). Padding positions come back as 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_penalized_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards r_t = −β·(log π(a_t) − log π_ref(a_t)), plus the sequence's score on its last
    real token (Ziegler et al. 2019, Eq. 2, with the per-token k1 estimate of the KL).
    scores: (B,); returns (rewards (B, T), kl (B, T))."""
    kl = (logprobs - ref_logprobs) * mask                                   # (B, T)
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)                            # (B,) index of the last token
    rewards[torch.arange(len(scores)), last] += scores
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, Eq. 16):
    δ_t = r_t + γ·V_{t+1} − V_t,  A_t = δ_t + γλ·A_{t+1}, with V and A zero past the last real token.
    Returns (advantages, returns = advantages + values), both (B, T)."""
    B, T = rewards.shape
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = adv * m
        # padding after the end carries nothing back
        next_adv = torch.where(m > 0, adv, next_adv * 0)
        next_value = torch.where(m > 0, values[:, t], next_value * 0)
    return advantages, (advantages + values) * mask


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate (Schulman et al. 2017, Eq. 7), as a loss to minimise:
    mean over tokens of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = exp(log π − log π_old).
    Also returns the share of tokens where clipping was active and the approximate KL(π_old‖π)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
                 "approxkl": 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask),
                 "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss (Huang et al. 2022, detail 9): ½·mean max((V − R)², (V_clip − R)²), where
    V_clip = V_old + clip(V − V_old, −ε, ε)."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    err, err_clipped = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((err_clipped > err).float(), mask), "error": masked_mean(err, mask)}
    return loss, stats


@dataclass
class FixedKLController:
    value: float

    def update(self, kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


@dataclass
class AdaptiveKLController:
    """Ziegler et al. 2019, Sec. 2.2: β ← β·(1 + K_β·e), e = clip(KL/target − 1, −0.2, 0.2), where
    K_β = n_steps / horizon (n_steps: samples seen in this update)."""

    value: float
    target: float
    horizon: float

    def update(self, kl: float, n_steps: int) -> None:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.target, self.horizon = state["value"], state["target"], state["horizon"]
