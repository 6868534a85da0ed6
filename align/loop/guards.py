"""What keeps the loop honest: the KL budget each policy stage is held to, the flag raised when the
reward model and the gold judge disagree, and the rule that a round that made the policy worse does
not become the next round's starting point.

The KL budget is enforced after training by shrinking the adapter towards the initial policy: every
LoRA `B` matrix is scaled by α ∈ (0, 1], i.e. the weights are interpolated between the initial policy
(α = 0) and the trained one (α = 1), as in WiSE-FT (Wortsman et al. 2022,
https://arxiv.org/abs/2109.01903). KL(π_α ‖ π_0) grows about as α², so a few measured steps find the
largest α within the budget.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from foundation.stats import intervals_overlap

__all__ = ["hold_to_kl_budget", "proxy_gold_disagreement", "made_worse"]


def _lora_b(model) -> dict[str, "object"]:
    return {name: p for name, p in model.named_parameters() if "lora_B" in name}


def _measure(policy, initial, prompts, sampling: dict) -> float:
    from align.evaluate import sample_once, token_kl

    samples = sample_once(policy, prompts, **sampling)
    return statistics.fmean(token_kl(policy, initial, prompts, [g.token_ids for g in samples]))


def hold_to_kl_budget(policy, initial, prompts, *, budget: float, sampling: dict, out: Path,
                      steps: int = 6) -> dict:
    """Measure KL(policy ‖ initial) per response on `prompts`; if above `budget`, scale the adapter
    down (largest measured α within the budget) and save the result in `out`. Returns what was done:
    {"kl_trained", "scale", "kl", "path"} (path: `out`, or None when the policy was kept as it is)."""
    import torch

    kl_trained = _measure(policy, initial, prompts, sampling)
    info = {"kl_trained": kl_trained, "scale": 1.0, "kl": kl_trained, "path": None, "budget": budget}
    lora_b = _lora_b(policy.model)
    if kl_trained <= budget or not lora_b:
        return info
    trained = {name: p.detach().clone() for name, p in lora_b.items()}
    low, high = (0.0, 0.0), 1.0                     # (α, KL) within the budget; the smallest α over it
    scale = math.sqrt(0.9 * budget / kl_trained)    # first guess: KL ∝ α² near the initial policy
    for _ in range(steps):
        with torch.no_grad():
            for name, p in lora_b.items():
                p.copy_(trained[name] * scale)
        kl = _measure(policy, initial, prompts, sampling)
        if kl <= budget:
            low = max(low, (scale, kl))
            if kl >= 0.8 * budget:                  # close enough below the budget
                break
        else:
            high = min(high, scale)
        scale = (low[0] + high) / 2                 # bisect between the best within and the least over
    scale, kl = low
    with torch.no_grad():
        for name, p in lora_b.items():
            p.copy_(trained[name] * scale)
    policy.save(str(out))
    info.update(scale=scale, kl=kl, path=str(out))
    return info


def proxy_gold_disagreement(evaluation: dict) -> str | None:
    """A warning when the reward model's win rate (the proxy) and the gold judge's, both over the
    initial policy on the same held-out prompts, disagree beyond their 95% intervals; else None."""
    judge, proxy = evaluation["judge_interval"], evaluation["reward_interval"]
    if intervals_overlap(judge, proxy):
        return None
    direction = "over" if proxy[0] > judge[1] else "under"
    return (f"the reward model rates the policy {evaluation['reward_win_rate']:.2f} "
            f"[{proxy[0]:.2f}, {proxy[1]:.2f}] over the initial policy but the gold judge "
            f"{evaluation['judge_win_rate']:.2f} [{judge[0]:.2f}, {judge[1]:.2f}]: "
            f"the reward model {direction}rates it. "
            + ("The policy is exploiting what the reward model mistakes for the labelers' preference "
               "(over-optimisation): more labels, a lower kl_budget or fewer policy steps help."
               if direction == "over" else "The reward model has not learnt what the judge rewards yet."))


def made_worse(evaluation: dict) -> bool:
    """True when the gold judge prefers the compared policy (initial or previous) with 95% confidence:
    the upper end of the new policy's win-rate interval is below ½."""
    return evaluation["judge_interval"][1] < 0.5
