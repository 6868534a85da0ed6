"""The weights a policy applies right now, for engines that sample from their own copy: each LoRA
layer's active adapters folded into its base weight, a bitsandbytes 4/8-bit base dequantized."""

from __future__ import annotations

from typing import Iterator

import torch


def effective_weight(linear: torch.nn.Module, out: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) that `linear` applies, in fp32: a LoRA layer's active adapters folded in, a
    bitsandbytes 4/8-bit base dequantized. The weight is a new tensor, or `out` (an fp32 buffer of its
    shape, e.g. rows of a stacked weight) filled in place: the base copied in once, each adapter's
    B·A added into it (one `addmm_`, no delta matrix, sum or copy of its own)."""
    from peft.tuners.lora import LoraLayer

    lora, adapters = None, []
    if isinstance(linear, LoraLayer):
        if not linear.disable_adapters and not linear.merged:
            adapters = [name for name in linear.active_adapters if name in linear.lora_A]
        lora, linear = linear, linear.get_base_layer()
    base = base_weight(linear)
    if out is None:
        out = torch.empty(base.shape, dtype=torch.float32, device=base.device)
    out.copy_(base)
    for name in adapters:
        _add_delta(lora, name, out)
    bias = linear.bias.detach().float() if getattr(linear, "bias", None) is not None else None
    return out, bias


def base_weight(linear: torch.nn.Module) -> torch.Tensor:
    """The weight of a plain or bitsandbytes 4/8-bit linear layer, dequantized (its own dtype otherwise)."""
    from peft.utils.integrations import dequantize_module_weight

    return (_dequantized(linear) if _cpu_packed(linear) else dequantize_module_weight(linear)).detach()


def _add_delta(lora, name: str, out: torch.Tensor) -> None:
    """out += the LoRA adapter `name`'s delta weight, scaling · B·A (peft's `get_delta_weight`)."""
    from peft.tuners.lora import Linear

    if isinstance(lora, Linear) and not lora.fan_in_fan_out:
        a, b = lora.lora_A[name].weight, lora.lora_B[name].weight
        out.addmm_(b.detach().float(), a.detach().float(), alpha=lora.scaling[name])
    else:
        out.add_(lora.get_delta_weight(name).detach().float())


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
