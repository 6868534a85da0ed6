"""What keeps the loop honest: the KL budget each policy stage is held to, the flag raised when the
reward model and the gold judge disagree, and the rule that a round that made the policy worse does
not become the next round's starting point.

The KL budget is enforced after training by shrinking the adapter towards the initial policy: every
LoRA `B` matrix is scaled by α ∈ (0, 1], i.e. the weights are interpolated between the initial policy
(α = 0) and the trained one (α = 1), as in WiSE-FT (Wortsman et al. 2022,
https://arxiv.org/abs/2109.01903). KL(π_α ‖ π_0) grows about as α², so a few measured steps find the
largest α within the budget.

The budget holds the upper end of the 95% interval of the mean KL over the measured prompts, not the
point estimate: on 32 prompts that estimate carries about ±0.7 nats at a KL of 8, and a guard that held
the point estimate let a policy end 0.34 nats over the budget on the held-out prompts (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from foundation.stats import intervals_overlap, mean_interval

__all__ = ["hold_to_kl_budget", "held_upper", "proxy_gold_disagreement", "made_worse"]


def _lora_b(model) -> dict[str, "object"]:
    return {name: p for name, p in model.named_parameters() if "lora_B" in name}


def _measure(policy, initial, prompts, sampling: dict) -> tuple[float, float]:
    """Mean KL per response over `prompts` and the upper end of its 95% interval."""
    from align.evaluate import sample_once, token_kl

    samples = sample_once(policy, prompts, **sampling)
    kls = token_kl(policy, initial, prompts, [g.token_ids for g in samples])
    return statistics.fmean(kls), mean_interval(kls)[1]


def hold_to_kl_budget(policy, initial, prompts, *, budget: float, sampling: dict, out: Path,
                      steps: int = 6) -> dict:
    """Measure KL(policy ‖ initial) per response on `prompts`; if the upper end of its 95% interval is
    above `budget`, scale the adapter down (the largest measured α whose upper end is within the budget)
    and save the result in `out`. Returns what was done: {"kl_trained", "kl_trained_upper", "scale",
    "kl", "kl_upper", "budget", "path"} (path: `out`, or None when the policy was kept as it is)."""
    import torch

    kl_trained, upper_trained = _measure(policy, initial, prompts, sampling)
    info = {"kl_trained": kl_trained, "kl_trained_upper": upper_trained, "scale": 1.0, "kl": kl_trained,
            "kl_upper": upper_trained, "budget": budget, "path": None}
    lora_b = _lora_b(policy.model)
    if upper_trained <= budget or not lora_b:
        return info
    trained = {name: p.detach().clone() for name, p in lora_b.items()}
    low, high = (0.0, 0.0, 0.0), 1.0                # (α, upper, KL) within the budget; least α over it
    scale = math.sqrt(0.9 * budget / upper_trained)  # first guess: KL ∝ α² near the initial policy
    for _ in range(steps):
        with torch.no_grad():
            for name, p in lora_b.items():
                p.copy_(trained[name] * scale)
        kl, upper = _measure(policy, initial, prompts, sampling)
        if upper <= budget:
            low = max(low, (scale, upper, kl))
            if upper >= 0.9 * budget:               # close enough below the budget
                break
        else:
            high = min(high, scale)
        scale = (low[0] + high) / 2                 # bisect between the best within and the least over
    scale, upper, kl = low
    with torch.no_grad():
        for name, p in lora_b.items():
            p.copy_(trained[name] * scale)
    policy.save(str(out))
    info.update(scale=scale, kl=kl, kl_upper=upper, path=str(out))
    return info


def held_upper(guard: dict) -> float:
    """The upper end of the 95% interval the guard held to the budget (state files written before the
    guard held the upper end: the mean)."""
    return guard.get("kl_upper", guard["kl"])


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
