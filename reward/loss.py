"""Pairwise reward-model losses: small pure functions over reward tensors of shape (B,)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bradley_terry_loss", "ranking_loss"]


def bradley_terry_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    tie: torch.Tensor | None = None,
    center_coefficient: float = 0.0,
) -> torch.Tensor:
    """Mean Bradley-Terry loss over a batch of pairs; each argument is (B,).

    Preferences: −log σ(r_c − r_r − m), with the margin m from the labeled strength
    (Llama 2, Eq. 2, https://arxiv.org/abs/2307.09288); m = 0 is the plain InstructGPT loss.

    Ties: the cross-entropy against the soft target P(c ≻ r) = ½, i.e. a tie counts as half a win each
    way (the "ties as half-wins" reading of Bradley-Terry, as in Elo/Glicko scoring):
        −½ log σ(d) − ½ log σ(−d),   d = r_c − r_r.
    It is minimised at d = 0, so a tie pulls the two rewards together instead of being dropped, and
    its gradient σ(d) − ½ is bounded, so noisy ties cannot dominate. Margins do not apply to ties.

    Centering (Eisenstein et al. 2023, https://arxiv.org/abs/2312.09244): + c · mean((r_c + r_r)²)
    keeps rewards near zero, which PPO's value model and KL coefficient like.
    """
    d = r_chosen - r_rejected
    if margin is None:
        margin = torch.zeros_like(d)
    pref_loss = -F.logsigmoid(d - margin)
    if tie is not None:
        tie = tie.to(d.dtype)
        tie_loss = -0.5 * F.logsigmoid(d) - 0.5 * F.logsigmoid(-d)
        pref_loss = (1 - tie) * pref_loss + tie * tie_loss
    loss = pref_loss.mean()
    if center_coefficient:
        loss = loss + center_coefficient * ((r_chosen + r_rejected) ** 2).mean()
    return loss


def ranking_loss(rewards: torch.Tensor, sizes: list[int], ranks: torch.Tensor) -> torch.Tensor:
    """InstructGPT's loss on K-way rankings (Ouyang et al. 2022, Eq. 1): for each ranking, the mean
    over its C(K, 2) pairs of −log σ(r_better − r_worse), tied pairs with the tie loss of
    `bradley_terry_loss`; then the mean over rankings. `rewards` (ΣK,) holds each ranking's responses
    in turn (`sizes` of them each), scored once; `ranks` (ΣK,) their ranks, 1 = best."""
    losses = []
    start = 0
    for k in sizes:
        r, rank = rewards[start:start + k], ranks[start:start + k]
        start += k
        i, j = torch.triu_indices(k, k, offset=1, device=r.device)
        better_i = rank[i] < rank[j]
        tie = (rank[i] == rank[j]).to(r.dtype)
        d = torch.where(better_i, r[i] - r[j], r[j] - r[i])
        pair = (1 - tie) * -F.logsigmoid(d) + tie * (-0.5 * F.logsigmoid(d) - 0.5 * F.logsigmoid(-d))
        losses.append(pair.mean())
    return torch.stack(losses).mean()
