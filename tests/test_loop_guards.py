"""The loop's guards on a tiny model: the KL budget shrinks an adapter that overshoots (and leaves one
within it alone), and the over-optimisation and made-worse flags read the intervals."""

import math

import pytest
import torch

from align.loop.guards import CLOSE, _aim, hold_to_kl_budget, made_worse, proxy_gold_disagreement
from align.policy import Policy

PROMPTS = [[{"role": "user", "content": f"Write about thing {i}."}] for i in range(6)]
SAMPLING = {"temperature": 0.7, "max_new_tokens": 8, "seed": 1, "batch_size": 8}


def _moved(tiny_llama, scale: float) -> Policy:
    policy = Policy.from_pretrained(tiny_llama, lora=True, lora_r=4)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, scale)
    return policy


def _trained(tiny_llama, tmp_path):
    """The initial policy, a moved one, and the guard's measurement of the moved one (no budget)."""
    initial = Policy.from_pretrained(tiny_llama)
    policy = _moved(tiny_llama, 0.05)
    trained = hold_to_kl_budget(policy, initial, PROMPTS, budget=1e9, sampling=SAMPLING, out=tmp_path / "no")
    return initial, policy, trained


def test_an_adapter_over_the_budget_is_shrunk_to_fit(tiny_llama, tmp_path):
    initial, policy, trained = _trained(tiny_llama, tmp_path)
    budget = 0.3 * trained["kl_trained"]
    info = hold_to_kl_budget(policy, initial, PROMPTS, budget=budget, sampling=SAMPLING,
                             out=tmp_path / "kept")
    assert info["kl_trained"] > budget and 0 < info["scale"] < 1
    assert 0 < info["kl"] < info["kl_upper"] <= budget       # the interval's upper end is held, not the mean
    assert (tmp_path / "kept" / "adapter_config.json").exists()
    again = Policy.from_pretrained(str(tmp_path / "kept"))              # the saved policy is the shrunk one
    b = {n: p for n, p in again.model.named_parameters() if "lora_B" in n}
    assert b and all(torch.allclose(b[n], p) for n, p in policy.model.named_parameters() if "lora_B" in n)


def test_the_guard_holds_the_upper_end_of_the_interval(tiny_llama, tmp_path):
    initial, policy, trained = _trained(tiny_llama, tmp_path)
    assert trained["kl_trained_upper"] > trained["kl_trained"]
    between = (trained["kl_trained"] + trained["kl_trained_upper"]) / 2    # mean within, upper end over
    info = hold_to_kl_budget(policy, initial, PROMPTS, budget=between, sampling=SAMPLING,
                             out=tmp_path / "kept")
    assert info["scale"] < 1 and info["kl_upper"] <= between


def test_an_adapter_within_the_budget_is_left_alone(tiny_llama, tmp_path):
    initial = Policy.from_pretrained(tiny_llama)
    policy = _moved(tiny_llama, 0.01)
    info = hold_to_kl_budget(policy, initial, PROMPTS, budget=5.0, sampling=SAMPLING, out=tmp_path / "kept")
    assert info["scale"] == 1.0 and info["path"] is None and info["kl"] == pytest.approx(info["kl_trained"])
    assert not (tmp_path / "kept").exists()


def test_an_adapter_well_within_the_budget_is_scaled_up_to_it_when_allowed(tiny_llama, tmp_path):
    initial, policy, trained = _trained(tiny_llama, tmp_path)
    budget = 2.0 * trained["kl_trained_upper"]
    info = hold_to_kl_budget(policy, initial, PROMPTS, budget=budget, sampling=SAMPLING,
                             out=tmp_path / "up", max_scale=3.0)
    assert 1.0 < info["scale"] <= 3.0
    assert trained["kl_trained_upper"] < info["kl_upper"] <= budget and info["kl"] > trained["kl_trained"]
    assert info["kl_upper"] >= CLOSE * budget or info["scale"] == 3.0      # close to the budget, or capped
    b = {n: p for n, p in Policy.from_pretrained(str(tmp_path / "up")).model.named_parameters()
         if "lora_B" in n}
    assert b and all(torch.allclose(b[n], p) for n, p in policy.model.named_parameters() if "lora_B" in n)
    capped = hold_to_kl_budget(_moved(tiny_llama, 0.05), initial, PROMPTS, budget=1e9, sampling=SAMPLING,
                               out=tmp_path / "cap", max_scale=1.5)
    assert capped["scale"] == 1.5                            # never past max_scale, however far the budget


def test_the_search_aims_along_the_measured_growth_of_kl():
    assert _aim([(1.0, 2.0)], 8.0) == pytest.approx(4 ** (1 / 1.75))    # α^1.75 until a second measurement
    # KL 2 → 6 from α 1 → 2: p = log 3 / log 2; from the nearer point, (8/6)^(1/p) further
    assert _aim([(1.0, 2.0), (2.0, 6.0)], 8.0) == pytest.approx(2.0 * (8 / 6) ** (math.log(2) / math.log(3)))
    assert _aim([(1.0, 10.0)], 8.0) == pytest.approx(0.8 ** (1 / 1.75))  # up or down, from over the budget


def test_flags_read_the_intervals():
    """The labelers' interval is the gold standard: it decides whether a round is worse, and the reward
    model is checked against it (against the oracle judge's only where no labeler compared)."""
    agree = {"labelers": {"win_rate": 0.7, "interval": [0.6, 0.78]}, "reward_win_rate": 0.75,
             "reward_interval": [0.66, 0.82]}
    assert proxy_gold_disagreement(agree) is None and not made_worse(agree)
    hacked = {"labelers": {"win_rate": 0.4, "interval": [0.31, 0.49]}, "reward_win_rate": 0.8,
              "reward_interval": [0.72, 0.86], "judge_win_rate": 0.8, "judge_interval": [0.7, 0.9]}
    warning = proxy_gold_disagreement(hacked)
    assert "over-optimisation" in warning and "but the labelers 0.40" in warning and made_worse(hacked)
    oracle_only = {"judge_win_rate": 0.4, "judge_interval": [0.31, 0.49], "reward_win_rate": 0.8,
                   "reward_interval": [0.72, 0.86]}
    assert "but the oracle judge 0.40" in proxy_gold_disagreement(oracle_only)
    # Noisy labelers (VADER at temperature 0.5, seed 1, round 2 of docs/benchmarks.md): the reward model
    # wins 0.88 of the prompts outright, but its odds predict 0.73 of noisy labels, near the labelers' 0.63.
    noisy = {"labelers": {"win_rate": 0.63, "interval": [0.50, 0.74]}, "reward_win_rate": 0.88,
             "reward_interval": [0.81, 0.93], "reward_expected_win_rate": 0.73,
             "reward_expected_interval": [0.70, 0.77]}
    assert proxy_gold_disagreement(noisy) is None
    hacked_odds = {**noisy, "labelers": {"win_rate": 0.45, "interval": [0.36, 0.55]},
                   "reward_expected_win_rate": 0.75, "reward_expected_interval": [0.71, 0.79]}
    warning = proxy_gold_disagreement(hacked_odds)
    assert "0.75 [0.71, 0.79] over the initial policy (the share of labels its odds predict)" in warning
    # ...and an evaluation recorded before the odds were (no expected figure): the outright win rate
    assert "over-optimisation" in proxy_gold_disagreement({**noisy, "reward_expected_interval": None})
