"""The one loader for policies: a causal LM, quantized and/or with a LoRA adapter."""

from __future__ import annotations

from reward.hub import load_model

__all__ = ["load_policy"]


def load_policy(options, *, padding_side: str = "right"):
    """`(model, tokenizer)` for `options` (`reward.options.ModelOptions`): a hub id, a folder or a
    `builtin:` alias; LoRA through peft, 4-bit/8-bit through bitsandbytes; dtype for the hardware.
    Use `padding_side="left"` for generation."""
    from transformers import AutoModelForCausalLM

    return load_model(AutoModelForCausalLM, options, task_type="CAUSAL_LM", padding_side=padding_side)
