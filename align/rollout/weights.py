"""The weights a policy applies right now, for engines that sample from their own copy: each LoRA
layer's active adapters folded into its base weight, a bitsandbytes 4/8-bit base dequantized."""

from __future__ import annotations

from typing import Iterator

import torch


def effective_weight(linear: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) that `linear` applies, in fp32: a LoRA layer's active adapters folded in, a
    bitsandbytes 4/8-bit base dequantized."""
    from peft.tuners.lora import LoraLayer
    from peft.utils.integrations import dequantize_module_weight

    delta = None
    if isinstance(linear, LoraLayer):
        if not linear.disable_adapters and not linear.merged:
            deltas = [linear.get_delta_weight(name) for name in linear.active_adapters
                      if name in linear.lora_A]
            delta = sum(deltas) if deltas else None
        linear = linear.get_base_layer()
    weight = _dequantized(linear) if _cpu_packed(linear) else dequantize_module_weight(linear)
    weight = weight.detach().float()
    if delta is not None:
        weight = weight + delta.detach().float()
    bias = linear.bias.detach().float() if getattr(linear, "bias", None) is not None else None
    return weight, bias


def _cpu_packed(linear) -> bool:
    state = getattr(getattr(linear, "weight", None), "quant_state", None)
    return bool(getattr(state, "packing_format_for_cpu", False))


def _dequantized(linear) -> torch.Tensor:
    """A 4-bit weight that bitsandbytes repacked for its CPU kernel at the first forward: peft's
    `dequantize_module_weight` reads that layout as the plain one and returns wrong values (checked
    with bitsandbytes 0.50.2), so undo the packing on a copy first."""
    import bitsandbytes.functional as bnbf

    data, state = bnbf._convert_weight_packed_for_cpu_inverse(linear.weight.data, linear.weight.quant_state)
    return bnbf.dequantize_4bit(data, state)


def causal_lm(model):
    """The plain `...ForCausalLM` inside a peft wrapper, or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def merged_state(model) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of the plain causal LM inside `model`, with the names 🤗 checkpoints use
    (`model.layers.0.self_attn.q_proj.weight`): what `load_weights` of another engine takes."""
    from peft.tuners.lora import LoraLayer

    lm = causal_lm(model)
    wrapped = [name for name, m in lm.named_modules() if isinstance(m, LoraLayer)]
    for name, module in lm.named_modules():
        if any(name.startswith(w + ".") for w in wrapped):
            continue                                         # inside a LoRA layer: folded below
        if isinstance(module, LoraLayer) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            weight, bias = effective_weight(module)
            yield f"{name}.weight", weight
            if bias is not None:
                yield f"{name}.bias", bias
            continue
        for pname, param in module.named_parameters(recurse=False):
            yield (f"{name}.{pname}" if name else pname), param.detach()
