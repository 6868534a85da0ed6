"""Generation engines behind one interface (`Sampler`): prompts' token ids and `SamplingParams` in,
completions (token ids, per-token log-probs, finished) out. PPO rollouts, the loop's candidates and
held-out answers, `align evaluate` and `align generate` all sample through `make_sampler`.

- `hf`: 🤗 `generate` on the live model (any architecture, device or quantization);
- `fused`: our decoder for Llama-family models with the adapter folded in, in bf16 where the CPU
  multiplies it natively and fp32 elsewhere (CPU default);
- `vllm`: vLLM colocated in the training process, weights pushed after each update (GPUs);
- `auto`: `fused` on CPU where the model allows, `vllm` on a GPU where it is installed, else `hf`.
"""

from __future__ import annotations

import sys
from typing import Literal

from align.rollout.base import Completion, Sampler, SamplingParams

__all__ = ["ENGINES", "ENGINE_HELP", "Engine", "Completion", "Sampler", "SamplingParams", "make_sampler"]

Engine = Literal["auto", "hf", "fused", "vllm"]
ENGINES = ("auto", "hf", "fused", "vllm")
ENGINE_HELP = ("Generation engine: auto (fused on CPU where the model allows, vllm on a GPU where it is "
               "installed, else hf), hf (🤗 generate), fused (our decoder with the adapter folded in, "
               "bf16 where the CPU has it, Llama-family models), vllm (GPUs).")


def make_sampler(engine: str, model, *, pad_id: int, eos: list[int], batch_size: int = 16,
                 quiet: bool = False) -> Sampler:
    """The `engine`'s sampler over `model` (a causal LM, peft-wrapped or not)."""
    from foundation.errors import ConfigError

    if engine not in ENGINES:
        raise ConfigError(f"generation engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    device = next(model.parameters()).device
    if engine == "auto":
        engine = _auto(model, device, quiet)
    if engine == "fused":
        from align.rollout.fused import FusedSampler, supports

        reason = supports(model)
        if reason:
            raise ConfigError(f"generation engine 'fused' cannot run this model: {reason}. "
                              "Use --engine hf (or auto).")
        return FusedSampler(model, eos, batch_size)
    if engine == "vllm":
        from align.rollout.vllm_engine import VLLMSampler

        return VLLMSampler(model, eos)
    from align.rollout.hf import HFSampler

    return HFSampler(model, pad_id, eos, batch_size)


def _auto(model, device, quiet: bool) -> str:
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("vllm") is not None:
            return "vllm"
        _notice("vLLM is not installed: sampling with HF generate (pip install vllm for faster rollouts).",
                quiet)
        return "hf"
    from align.rollout.fused import supports

    reason = supports(model)
    if reason is None:
        return "fused"
    _notice(f"the fused engine cannot run this model ({reason}): sampling with HF generate.", quiet)
    return "hf"


def _notice(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"note: {message}", file=sys.stderr, flush=True)
