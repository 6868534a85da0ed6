"""Prefix sharing for DPO: the prompt of a pair goes through the model once, not twice.

TRL's DPOTrainer forwards `prompt + chosen` and `prompt + rejected` as two rows. With multi-turn
prompts (HH-RLHF: 135 prompt tokens against 40-50 per response) most of that work is the prompt,
done twice. Here each pair is one row:

    prompt · chosen · x · rejected

where x is a copy of the prompt's last token at the same position. A 4-D attention mask lets chosen
tokens see the prompt and earlier chosen tokens; x sees the prompt without its last token, and
itself, so that its hidden state is that last token's; rejected tokens see the prompt without its last
token, x, and earlier rejected tokens. Positions restart after the prompt for both responses. Every
token's hidden state is then what it is in TRL's two rows (up to float rounding), and the first
response token of each side is predicted from the same prompt state.

The collator adds the packed row to TRL's usual batch; hooks on the model run the packed row whenever
TRL calls the model with `fused_lm_head=True`, and put the per-token outputs back in TRL's two-row
layout, so TRL's losses, metrics and reference pass are unchanged.
"""

from __future__ import annotations

import torch
from trl.trainer.dpo_trainer import DataCollatorForPreference

__all__ = ["PrefixSharingCollator", "share_prefixes", "PACKED_KEYS"]

PACKED_KEYS = ("packed_input_ids", "packed_position_ids", "packed_attention_mask", "packed_shift_labels",
               "packed_rows", "packed_cols", "packed_valid")


class PrefixSharingCollator(DataCollatorForPreference):
    """TRL's preference collator (truncation `keep_start`), plus the packed rows of `pack_pairs`."""

    def torch_call(self, examples: list[dict]) -> dict:
        batch = super().torch_call(examples)
        batch.update(pack_pairs(examples, self.max_length, self.pad_token_id, batch["input_ids"].shape[1]))
        return batch


def pack_pairs(examples: list[dict], max_length: int | None, pad_id: int, two_row_length: int) -> dict:
    """The packed rows of a batch, and where each of TRL's two-row positions reads from them.

    TRL's row i (chosen) and row B+i (rejected) hold `prompt + response` cut to `max_length`; its
    position t predicts token t+1. In the packed row, chosen token k is predicted at p-1+k (as in TRL's
    row) and rejected token k at p+c+k (x predicts the first)."""
    B = len(examples)
    sizes = []
    for ex in examples:
        p = len(ex["prompt_ids"]) if max_length is None else min(len(ex["prompt_ids"]), max_length)
        room = None if max_length is None else max_length - p
        c = len(ex["chosen_ids"]) if room is None else min(len(ex["chosen_ids"]), room)
        r = len(ex["rejected_ids"]) if room is None else min(len(ex["rejected_ids"]), room)
        if p == 0:
            raise ValueError("prefix sharing needs a non-empty prompt in every pair")
        sizes.append((p, c, r))
    Lp = max(p + c + 1 + r for p, c, r in sizes)
    T = two_row_length - 1
    ids = torch.full((B, Lp), pad_id, dtype=torch.long)
    positions = torch.zeros((B, Lp), dtype=torch.long)
    labels = torch.full((B, Lp), -100, dtype=torch.long)
    mask = torch.zeros((B, 1, Lp, Lp), dtype=torch.bool)
    cols = torch.zeros((2 * B, T), dtype=torch.long)
    valid = torch.zeros((2 * B, T), dtype=torch.bool)
    tril = lambda n: torch.ones(n, n, dtype=torch.bool).tril()  # noqa: E731
    for i, (ex, (p, c, r)) in enumerate(zip(examples, sizes)):
        prompt, chosen, rejected = ex["prompt_ids"][:p], ex["chosen_ids"][:c], ex["rejected_ids"][:r]
        x, end = p + c, p + c + 1 + r
        ids[i, :end] = torch.tensor([*prompt, *chosen, prompt[-1], *rejected])
        positions[i, :end] = torch.cat([torch.arange(p + c), torch.tensor([p - 1]), torch.arange(p, p + r)])
        labels[i, p - 1:p - 1 + c] = torch.tensor(chosen, dtype=torch.long)
        labels[i, x:x + r] = torch.tensor(rejected, dtype=torch.long)
        m = mask[i, 0]
        m[:p, :p] = tril(p)
        m[p:x, :p] = True
        m[p:x, p:x] = tril(c)
        m[x:end, :p - 1] = True
        m[x:end, x:end] = tril(1 + r)
        m[end:, end:] = torch.eye(Lp - end, dtype=torch.bool)        # padding sees itself (no empty rows)
        cols[i, p - 1:p - 1 + c] = torch.arange(p - 1, p - 1 + c)
        valid[i, p - 1:p - 1 + c] = True
        cols[B + i, p - 1:p - 1 + r] = torch.arange(x, x + r)
        valid[B + i, p - 1:p - 1 + r] = True
    rows = torch.arange(2 * B).remainder(B)   # TRL's rows i and B+i both read packed row i
    rows = rows.unsqueeze(1).expand(2 * B, T).contiguous()
    return {"packed_input_ids": ids, "packed_position_ids": positions, "packed_attention_mask": mask,
            "packed_shift_labels": labels, "packed_rows": rows, "packed_cols": cols, "packed_valid": valid}


def share_prefixes(model) -> list:
    """Hooks on `model` (the PEFT model TRL trains) that run a call carrying packed rows on those rows
    and return its per-token outputs in TRL's two-row layout. Returns the hook handles."""
    current: dict = {}                  # the packed rows of the call in flight (TRL's calls never nest)

    def before(module, args, kwargs):
        current.clear()                 # a call that raised must not leave its rows to the next one
        if "packed_input_ids" not in kwargs:
            return None
        packed = {k: kwargs.pop(k) for k in PACKED_KEYS}
        if not kwargs.get("fused_lm_head"):
            raise ValueError("prefix sharing needs TRL's fused LM head (fused_lm_head=True)")
        current.update(packed)
        attention = packed["packed_attention_mask"]
        if getattr(_config(module), "_attn_implementation", "sdpa") == "eager":
            attention = torch.zeros(attention.shape, dtype=torch.float32,
                                    device=attention.device).masked_fill(
                ~attention, torch.finfo(torch.float32).min)
        kwargs.update(input_ids=packed["packed_input_ids"], attention_mask=attention,
                      position_ids=packed["packed_position_ids"], shift_labels=packed["packed_shift_labels"])
        kwargs.pop("labels", None)
        return args, kwargs

    def after(module, args, kwargs, output):
        if not current:
            return None
        rows, cols, valid = current["packed_rows"], current["packed_cols"], current["packed_valid"]
        shape = current["packed_input_ids"].shape
        current.clear()
        for name, value in list(output.items()):
            if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape == shape:
                output[name] = torch.where(valid, value[rows, cols], torch.zeros((), dtype=value.dtype,
                                                                                 device=value.device))
        return output

    return [model.register_forward_pre_hook(before, with_kwargs=True),
            model.register_forward_hook(after, with_kwargs=True)]


def _config(module):
    return getattr(module, "config", None) or getattr(getattr(module, "base_model", None), "config", None)
