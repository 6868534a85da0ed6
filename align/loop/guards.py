"""What keeps the loop honest: the KL budget each policy stage is held to, the flag raised when the
reward model and the labelers disagree, and the rule that a round the labelers find worse does not
become the next round's starting point.

The KL budget is enforced after training by shrinking the adapter towards the initial policy: every
LoRA `B` matrix is scaled by α ∈ (0, 1], i.e. the weights are interpolated between the initial policy
(α = 0) and the trained one (α = 1), as in WiSE-FT (Wortsman et al. 2022,
https://arxiv.org/abs/2109.01903). KL(π_α ‖ π_0) grows about as a power of α (α² near 0), so one or
two measured steps usually find an α within the budget and close to it. With `max_scale` > 1 the same
search runs the other way for a policy that ended well inside the budget: α > 1 moves it further along
the direction it was trained in (ExPO, Zheng et al. 2024, https://arxiv.org/abs/2404.16792), up to the
budget.

The budget holds the upper end of the 95% interval of the mean KL over the measured prompts, not the
point estimate: on 32 prompts that estimate carries about ±0.7 nats at a KL of 8, and a guard that held
the point estimate let a policy end 0.34 nats over the budget on the held-out prompts (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from foundation.stats import intervals_overlap, mean_interval

__all__ = ["hold_to_kl_budget", "held_upper", "proxy_gold_disagreement", "made_worse", "lora_b_matrices"]


def lora_b_matrices(model) -> dict[str, "object"]:
    """The LoRA `B` matrices of `model` by name: scaling them scales the adapter's update."""
    return {name: p for name, p in model.named_parameters() if "lora_B" in name}


def _measure(policy, initial, prompts, sampling: dict) -> tuple[float, float]:
    """Mean KL per response over `prompts` and the upper end of its 95% interval."""
    from align.evaluate import sample_once, token_kl

    samples = sample_once(policy, prompts, **sampling)
    kls = token_kl(policy, initial, prompts, [g.token_ids for g in samples])
    return statistics.fmean(kls), mean_interval(kls)[1]


# The search aims at AIM · budget and stops at the first α whose upper end lands in [CLOSE, 1] · budget:
# the window is wide enough for the upper end's own noise on 40 prompts (about ±0.05 · budget), so most
# searches end after one or two measurements.
AIM, CLOSE = 0.925, 0.85


def _aim(measured: list[tuple[float, float]], target: float) -> float:
    """The α whose upper end should be `target`, from the measured (α, upper) nearest to it: KL grows
    about as α^p, p fitted to the last two measurements; until there are two, 1.75 (fitted 1.68, 1.74
    and 1.81 scaling up in three demo runs' first rounds; 1.56 and 1.04 shrinking adapters trained to
    KL 14 and 11.5, below the 2 of the quadratic growth near the initial policy)."""
    base_scale, base_upper = min(measured, key=lambda m: abs(math.log(max(m[1], 1e-9) / target)))
    p = 1.75
    if len(measured) >= 2:
        (a1, u1), (a2, u2) = measured[-2:]
        if a1 > 0 and a2 > 0 and a1 != a2 and u1 > 0 and u2 > 0:
            p = min(max(math.log(u2 / u1) / math.log(a2 / a1), 1.0), 4.0)
    return base_scale * (target / max(base_upper, 1e-9)) ** (1 / p)


def hold_to_kl_budget(policy, initial, prompts, *, budget: float, sampling: dict, out: Path,
                      max_scale: float = 1.0, steps: int = 6, keep_rank: int = 0) -> dict:
    """Measure KL(policy ‖ initial) per response on `prompts` (`initial`: the policy the budget is held
    against; with stacked rounds, the last kept one); if the upper end of its 95% interval is
    above `budget`, scale the adapter down (the largest measured α whose upper end is within the budget)
    and save the result in `out`. `keep_rank`: the first ranks of every LoRA matrix are left as they
    are (a stacked adapter's earlier rounds, which `initial` holds), only the rest is scaled. With
    `max_scale` > 1, a policy that ended well inside the budget (upper end under 0.85 · budget) is
    scaled up (ExPO), α up to `max_scale`, until it reaches the budget, and saved likewise. Returns
    what was done: {"kl_trained", "kl_trained_upper", "scale", "kl", "kl_upper",
    "budget", "path"} (path: `out`, or None when the policy was kept as it is), and when it searched,
    "measured": each (α, upper end) it measured."""
    import torch

    kl_trained, upper_trained = _measure(policy, initial, prompts, sampling)
    info = {"kl_trained": kl_trained, "kl_trained_upper": upper_trained, "scale": 1.0, "kl": kl_trained,
            "kl_upper": upper_trained, "budget": budget, "path": None}
    lora_b = lora_b_matrices(policy.model)
    over = upper_trained > budget
    # nothing to scale down, or up (an adapter that has not moved the policy has no direction)
    if not lora_b or (not over and (max_scale <= 1.0 or not 0 < upper_trained < CLOSE * budget)):
        return info
    trained = {name: p.detach().clone() for name, p in lora_b.items()}

    def set_scale(scale: float) -> None:
        with torch.no_grad():
            for name, p in lora_b.items():
                p[:, keep_rank:].copy_(trained[name][:, keep_rank:] * scale)

    # (α, upper, KL) the best measured within the budget; the least α measured over it (None: none yet)
    low, high = ((0.0, 0.0, 0.0), 1.0) if over else ((1.0, upper_trained, kl_trained), None)
    measured = [(1.0, upper_trained)]
    for _ in range(steps):
        scale = _aim(measured, AIM * budget)
        if high is not None and not low[0] < scale < high:
            scale = (low[0] + high) / 2
        scale = min(scale, max_scale)
        set_scale(scale)
        kl, upper = _measure(policy, initial, prompts, sampling)
        measured.append((scale, upper))
        if upper <= budget:
            low = max(low, (scale, upper, kl))
            if upper >= CLOSE * budget or scale >= max_scale:     # close enough below the budget, or the cap
                break
        else:
            high = scale if high is None else min(high, scale)
    scale, upper, kl = low
    if scale == 1.0:
        set_scale(1.0)
        return info
    set_scale(scale)
    policy.save(str(out))
    info.update(scale=scale, kl=kl, kl_upper=upper, path=str(out), measured=measured)
    return info


def held_upper(guard: dict) -> float:
    """The upper end of the 95% interval the guard held to the budget (state files written before the
    guard held the upper end: the mean)."""
    return guard.get("kl_upper", guard["kl"])


def proxy_gold_disagreement(evaluation: dict) -> str | None:
    """A warning when the reward model (the proxy) and the labelers (the gold standard; the oracle
    judge where no labeler compared), both over the initial policy on the same held-out prompts, disagree
    beyond their 95% intervals; else None. Against the labelers the reward model's figure is the share of
    labels its Bradley-Terry odds predict (it learnt from labels as noisy as theirs, and noisy labelers'
    win rates lie nearer ½ than any deterministic scorer's); against the oracle, its own win rate."""
    labelers = evaluation.get("labelers")
    gold = labelers or ({"win_rate": evaluation["judge_win_rate"], "interval": evaluation["judge_interval"]}
                        if evaluation.get("judge_interval") else None)
    if gold is None or evaluation.get("reward_interval") is None:
        return None
    expected = labelers is not None and evaluation.get("reward_expected_interval") is not None
    rate, proxy = ((evaluation["reward_expected_win_rate"], evaluation["reward_expected_interval"])
                   if expected else (evaluation["reward_win_rate"], evaluation["reward_interval"]))
    judge = gold["interval"]
    if intervals_overlap(judge, proxy):
        return None
    direction = "over" if proxy[0] > judge[1] else "under"
    return (f"the reward model rates the policy {rate:.2f} [{proxy[0]:.2f}, {proxy[1]:.2f}] over the "
            f"initial policy{' (the share of labels its odds predict)' if expected else ''} but "
            f"{'the labelers' if labelers else 'the oracle judge'} "
            f"{gold['win_rate']:.2f} [{judge[0]:.2f}, {judge[1]:.2f}]: "
            f"the reward model {direction}rates it. "
            + ("The policy is exploiting what the reward model mistakes for the labelers' preference "
               "(over-optimisation): more labels, a lower kl_budget or fewer policy steps help."
               if direction == "over" else "The reward model has not learnt what the labelers reward yet."))


def made_worse(evaluation: dict) -> bool:
    """True when the labelers prefer the compared policy (initial or previous) with 95% confidence: the
    upper end of the new policy's anytime-valid win-rate interval is below ½."""
    return evaluation["labelers"]["interval"][1] < 0.5
