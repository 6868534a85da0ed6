"""PPO's pure functions against values computed by hand (the arithmetic is in the comments)."""

import math

import pytest
import torch

from align.ppo.loss import (
    AdaptiveKLController,
    gae,
    kl_penalized_rewards,
    policy_loss,
    value_loss,
    whiten,
)
from align.ppo.model import logprobs_and_entropy


# fp32 against Python's float64 hand values: pytest.approx's default rel=1e-6 is ~8 fp32 ulps, room for
# the roundings of these few-operation computations (2 ulps at most on these CPUs)
def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_by_hand():
    # γ = 1, λ = 0.5. t=2: δ = 2 + 0 − 1.5 = 0.5, A = 0.5;
    # t=1: δ = 0 + 1.5 − 1 = 0.5, A = 0.5 + 0.5·0.5 = 0.75;
    # t=0: δ = 1 + 1 − 0.5 = 1.5, A = 1.5 + 0.5·0.75 = 1.875. Returns = A + V.
    adv, ret = gae(t([[1, 0, 2]]), t([[0.5, 1.0, 1.5]]), t([[1, 1, 1]]), gamma=1.0, lam=0.5)
    assert adv[0].tolist() == pytest.approx([1.875, 0.75, 0.5])
    assert ret[0].tolist() == pytest.approx([2.375, 1.75, 2.0])


def test_gae_ignores_padding():
    # γ = 0.9, λ = 1, last real token at t=1: δ1 = 2 + 0.9·0 − 1 = 1, A1 = 1; δ0 = 1 + 0.9·1 − 1 = 0.9,
    # A0 = 0.9 + 0.9·1 = 1.8. The padded reward 7 and value 5 play no part.
    adv, ret = gae(t([[1, 2, 7]]), t([[1, 1, 5]]), t([[1, 1, 0]]), gamma=0.9, lam=1.0)
    assert adv[0].tolist() == pytest.approx([1.8, 1.0, 0.0])
    assert ret[0].tolist() == pytest.approx([2.8, 2.0, 0.0])


def test_clipped_policy_loss_by_hand():
    # ratios 1.5, 0.5, 1.1 with advantages 1, −1, 2 and ε = 0.2:
    # max(−1.5, −1.2) = −1.2 (clipped); max(0.5, 0.8) = 0.8 (clipped); max(−2.2, −2.2) = −2.2 (not clipped).
    logp = t([[math.log(1.5), math.log(0.5), math.log(1.1)]])
    loss, stats = policy_loss(logp, torch.zeros(1, 3), t([[1, -1, 2]]), torch.ones(1, 3), cliprange=0.2)
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 2.2) / 3)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    # a masked token changes nothing
    loss2, _ = policy_loss(torch.cat([logp, t([[5.0]])], 1), torch.zeros(1, 4), t([[1, -1, 2, 9]]),
                           t([[1, 1, 1, 0]]), cliprange=0.2)
    assert loss2.item() == pytest.approx(loss.item())


def test_clipped_value_loss_by_hand():
    # token 0: V_clip = 0.5 + clip(0.5, ±0.2) = 0.7; (1 − 2)² = 1, (0.7 − 2)² = 1.69 → 1.69 (clipped)
    # token 1: V_clip = 0; both errors 1 → 1. Loss = ½·(1.69 + 1)/2.
    loss, stats = value_loss(t([[1.0, 0.0]]), t([[0.5, 0.0]]), t([[2.0, 1.0]]), torch.ones(1, 2), 0.2)
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_kl_penalty_and_score_on_last_real_token():
    # kl = logp − ref = [0.5, 0, (masked)]; rewards = −0.1·kl,
    # plus the score 2 on token 1 (the last real one).
    rewards, kl = kl_penalized_rewards(t([2.0]), t([[-1, -2, -3]]), t([[-1.5, -2, -2]]), t([[1, 1, 0]]), 0.1)
    assert kl[0].tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert rewards[0].tolist() == pytest.approx([-0.05, 2.0, 0.0])


def test_whiten_by_hand():
    # real tokens 1, 2, 3: mean 2, unbiased variance 1 → −1, 0, 1; the padded 100 is ignored and zeroed.
    x, m = t([[1, 2, 3, 100]]), t([[1, 1, 1, 0]])
    assert whiten(x, m)[0].tolist() == pytest.approx([-1, 0, 1, 0], abs=1e-6)
    assert whiten(x, m, shift_mean=False)[0].tolist() == pytest.approx([1, 2, 3, 0], abs=1e-6)


def test_adaptive_kl_controller_by_hand():
    # e = clip(12/6 − 1, ±0.2) = 0.2; β ← 0.1·(1 + 0.2·100/10000) = 0.1002. Then e = clip(3/6 − 1) = −0.2.
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(12.0, 100)
    assert ctl.value == pytest.approx(0.1002)
    ctl.update(3.0, 100)
    assert ctl.value == pytest.approx(0.1002 * 0.998)


def test_logprobs_and_entropy_of_uniform_and_peaked():
    logits = t([[[0.0, 0, 0, 0], [100.0, 0, 0, 0], [math.log(3), 0, 0, 0]]])       # (1, 3, 4)
    logprobs, entropy = logprobs_and_entropy(logits, torch.tensor([[2, 0, 0]]), temperature=1.0)
    assert logprobs.tolist()[0] == pytest.approx([math.log(1 / 4), 0.0, math.log(3 / 6)], abs=1e-6)
    # H = −Σ p log p: log 4; 0; p = (1/2, 1/6, 1/6, 1/6) → ½ log 2 + ½ log 6
    assert entropy.tolist()[0] == pytest.approx([math.log(4), 0.0, 0.5 * math.log(2) + 0.5 * math.log(6)],
                                                abs=1e-6)
    hot, _ = logprobs_and_entropy(logits, torch.tensor([[2, 0, 0]]), temperature=2.0)   # logits / 2
    assert hot[0, 2].item() == pytest.approx(math.log(math.sqrt(3) / (math.sqrt(3) + 3)), abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_head_logprobs_in_chunks_match_the_logits_path_with_gradients(monkeypatch, temperature):
    """The output layer a few positions at a time (chunks of 3 here, their logits 2 rows at a time) gives
    the same log-probs, entropy and gradients (states and weight) as the full logits through
    `logprobs_and_entropy`."""
    import align.ppo.model as model

    monkeypatch.setattr(model, "_CHUNK_FLOATS", 3 * 11)                # V = 11: 3 positions a chunk,
    monkeypatch.setattr(model, "_ROW_FLOATS", 2 * 11)                  # gone through 2 at a time
    torch.manual_seed(0)
    head = torch.nn.Linear(5, 11, bias=False).double()
    states = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, 11, (2, 4))
    weights = torch.randn(2, 4, dtype=torch.float64)                   # any loss of the log-probs
    want_lp, want_h = logprobs_and_entropy(head(states), tokens, temperature)
    (want_lp * weights).sum().backward()
    want_grads = states.grad.clone(), head.weight.grad.clone()
    states.grad, head.weight.grad = None, None
    lp, h = model.head_logprobs(states, head, tokens, temperature)
    (lp * weights).sum().backward()
    # Both paths compute in float64 (a float64 head is never rounded to float32); they differ only in
    # the order of float64 sums over 11 logits and 8 positions: a few ulps, far below 1e-12.
    assert lp.dtype == h.dtype == torch.float64
    exact = dict(rtol=1e-12, atol=1e-12)
    assert torch.allclose(lp, want_lp, **exact) and torch.allclose(h, want_h, **exact)
    assert torch.allclose(states.grad, want_grads[0], **exact)
    assert torch.allclose(head.weight.grad, want_grads[1], **exact)
    assert not h.requires_grad
