"""The `hf` engine: 🤗 `generate` on the model as it is (any architecture, any device, quantized or not),
with the LoRA adapter folded into the base weights while it samples where the base is not quantized."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from align.rollout.base import Completion, SamplingParams, cut_at_eos, in_batches, left_padded


class HFSampler:
    name = "hf"

    def __init__(self, model, pad_id: int, eos: list[int], batch_size: int = 16):
        self.model, self.pad_id, self.eos, self.batch_size = model, pad_id, list(eos), batch_size

    def refresh(self) -> None:
        """Nothing to do: `generate` reads the live weights."""

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        seeded = torch.random.fork_rng() if params.seed is not None else nullcontext()
        with seeded, folded_adapter(self.model):
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = in_batches(prompts, params.n, self.batch_size,
                             lambda batch: self._generate(*left_padded(batch, self.pad_id, device), params))
        self.model.train(was_training)
        return out

    def _generate(self, ids, mask, params: SamplingParams) -> list[Completion]:
        kwargs = dict(do_sample=params.temperature > 0, max_new_tokens=params.max_new_tokens,
                      pad_token_id=self.pad_id, eos_token_id=self.eos, output_scores=True,
                      return_dict_in_generate=True)
        if params.temperature > 0:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        result = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        new = result.sequences[:, ids.shape[1]:]                                        # (B, T_new)
        # log-probs of the sampled tokens under the processed (temperature/top-p) distribution
        scores = torch.stack(result.scores, dim=1).float().log_softmax(-1)             # (B, T_new, V)
        token_lp = scores.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        eos = set(self.eos)
        return [cut_at_eos(row.tolist(), lp.tolist(), eos) for row, lp in zip(new, token_lp)]


@contextmanager
def folded_adapter(model):
    """Sample faster: while inside, each LoRA layer's update B·A·scale is folded into a fresh copy of its
    base weight and the adapter branch is off, so a decoding step runs one matmul per layer instead of
    three (measured: 3.7 → 3.1 s for 8 × 40 tokens of SmolLM2-135M on this CPU). The base tensors are
    put back untouched on exit: no merge/unmerge round trip, whose float error would move the reference.
    Quantized bases are left as they are (their weights cannot take a delta)."""
    from peft.tuners.lora import LoraLayer

    swapped = []
    for module in model.modules():
        if (isinstance(module, LoraLayer) and type(module.get_base_layer()) is torch.nn.Linear
                and not module.merged):
            base = module.get_base_layer()
            delta = sum(module.get_delta_weight(name) for name in module.active_adapters
                        if name in module.lora_A)
            swapped.append((base, base.weight))
            base.weight = torch.nn.Parameter(base.weight.detach() + delta.to(base.weight.dtype),
                                             requires_grad=False)
    try:
        with model.disable_adapter() if swapped else nullcontext():
            yield
    finally:
        for base, weight in swapped:
            base.weight = weight
