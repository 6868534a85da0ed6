"""TRL's fused LM head on a CPU: the output layer only where a log-prob is needed.

TRL's trainers (SFT, DPO, KTO, GRPO/RLOO) score tokens through a fused LM head
(`trl.trainer.utils.add_fused_lm_head`): the hidden states are projected to the vocabulary a tile at a
time and folded into running log-sum-exp statistics, the `[positions, vocabulary]` logits never whole.
On Triton devices it projects only the labelled positions; elsewhere it projects every position, prompt
and padding included (so that a compiled kernel keeps one tile shape), and masks the result. On a CPU
that was about half of a DPO step: on HH pairs 28% of a packed row's positions predict a response token,
and the vocabulary is 49,152 wide against a hidden size of 576 (SmolLM2-135M). Hooks on the model make
TRL take its labelled-only path for every call its trainer makes, on any device; the values are the
same, position for position.
"""

from __future__ import annotations

import functools

__all__ = ["score_labelled_positions_only"]


def score_labelled_positions_only(model) -> list:
    """Hooks on `model` (the model a TRL trainer calls) under which its fused LM head projects only the
    labelled positions; TRL's own decision is back in place after each call. Returns the hook handles."""
    utils, trl_decides = _trl()

    def before(module, args, kwargs):
        utils._use_triton = _labelled_only if kwargs.get("fused_lm_head") else trl_decides

    def after(module, args, kwargs, output):
        utils._use_triton = trl_decides

    return [model.register_forward_pre_hook(before, with_kwargs=True),
            model.register_forward_hook(after, with_kwargs=True, always_call=True)]


@functools.cache
def _trl():
    """TRL's module and the function it asks whether to project the labelled positions only."""
    import trl.trainer.utils as utils

    return utils, utils._use_triton


def _labelled_only(device) -> bool:
    return True
