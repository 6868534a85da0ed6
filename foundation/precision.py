"""Which floating-point precision this machine computes fastest in: the one place that decides.

bf16 halves the bytes every matmul reads, and on hardware that multiplies it natively (a GPU with bf16,
a CPU with AMX or AVX512-BF16) it is the fast choice. On a CPU without those instructions (AVX2 only, as
many laptops and cloud VMs) every bf16 matmul is emulated: measured on a 2-core AMD EPYC with AVX2,
SmolLM2-135M + LoRA sampled at 27.9 tokens/s in bf16 against 105.3 in fp32, and a DPO step took 210 s
under bf16 autocast against 16 s in fp32. So every CPU path that would pick bf16 on its own (the fused
sampling engine, `mixed_precision: auto` in every trainer, PPO's fast path) asks `native_bf16` here,
and uses fp32 where the answer is no. A precision the user names explicitly (`--mixed_precision bf16`,
`--dtype bfloat16`) is always obeyed.

`ALIGN_NATIVE_BF16=0` (or `1`) overrides the CPU check, to reproduce a machine of the other kind;
torch run with `ATEN_CPU_CAPABILITY=avx2` (or `default`) counts as a CPU without native bf16 too.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

__all__ = ["native_bf16", "cpu_kind", "autocast_dtype", "sampling_dtype", "frozen_base_dtype"]

_OVERRIDE = "ALIGN_NATIVE_BF16"


@lru_cache(maxsize=None)
def cpu_kind() -> str:
    """What this CPU multiplies bf16 with: "AMX", "AVX512-BF16", or what torch's kernels use instead
    ("AVX2", "AVX512", "DEFAULT", ...) when it has neither. One word, for logs and benchmark tables."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()        # honours ATEN_CPU_CAPABILITY
    if capability.startswith("AVX512") or capability == "AMX":
        if torch.cpu._is_amx_tile_supported():
            return "AMX"
        if torch.cpu._is_avx512_bf16_supported():
            return "AVX512-BF16"
    return capability


def native_bf16(device: str = "cpu") -> bool:
    """True when `device` ("cpu" or "cuda") multiplies bf16 natively."""
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    forced = os.environ.get(_OVERRIDE, "").strip().lower()
    if forced in ("0", "1", "false", "true", "no", "yes"):
        return forced in ("1", "true", "yes")
    return cpu_kind() in ("AMX", "AVX512-BF16")


def autocast_dtype(mixed_precision: str, device: str = "cpu", weights=None):
    """The autocast dtype for `mixed_precision` ("auto", "no", "bf16", "fp16") on `device`, or None for
    none (plain `weights` precision, fp32 by default). "auto" is bf16 where the device has it natively
    (fp16 over fp16 weights); "no" is None; "bf16"/"fp16" are obeyed whatever the hardware."""
    import torch

    if mixed_precision == "bf16":
        return torch.bfloat16
    if mixed_precision == "fp16" or (mixed_precision == "auto" and weights == torch.float16):
        return torch.float16
    if mixed_precision == "no":
        return None
    if native_bf16(device):
        _announce(device, f"bf16 autocast ({_why(device)})")
        return torch.bfloat16
    _announce(device, f"fp32, no autocast ({_why(device)}; --mixed_precision bf16 forces it)")
    return None


def sampling_dtype(device: str = "cpu"):
    """The dtype the fused engine samples in: bf16 where `device` multiplies it natively, else fp32."""
    import torch

    if native_bf16(device):
        _announce("sampling", f"bf16 ({_why(device)})")
        return torch.bfloat16
    _announce("sampling", f"fp32 ({_why(device)})")
    return torch.float32


def frozen_base_dtype(options, mixed_precision: str, device: str = "cpu") -> str:
    """The dtype a LoRA-trained base loads in (`options`: a `ModelOptions`). Under bf16 autocast, with
    `dtype: auto` and no quantization, bf16: the base's weights are frozen, and autocast would cast each
    one to bf16 on every forward anyway (the adapter, and its optimizer, stay fp32). Anything else as
    `options.dtype` says. Measured on a 2-core EPYC with AVX512-BF16 (medians): a PPO update 34.7 s over
    fp32 weights, 31.1 s over bf16 ones; a DPO step in docs/benchmarks.md."""
    import torch

    if options.dtype != "auto" or options.quantization != "none" or not options.lora:
        return options.dtype
    if autocast_dtype(mixed_precision, device) != torch.bfloat16:
        return options.dtype
    _announce(device, "the frozen base in bf16 (dtype: auto under bf16 autocast; --dtype float32 keeps it "
                      "in fp32)")
    return "bfloat16"


def _why(device: str) -> str:
    if device == "cuda":
        return "this GPU has bf16" if native_bf16(device) else "this GPU has no bf16"
    if os.environ.get(_OVERRIDE):
        return f"{_OVERRIDE}={os.environ[_OVERRIDE]}"
    kind = cpu_kind()
    return f"this CPU multiplies bf16 natively: {kind}" if native_bf16(device) else \
        f"this CPU has no native bf16 matmul: {kind}"


@lru_cache(maxsize=None)
def _announce(what: str, choice: str) -> None:
    """Print an automatic choice once per process."""
    label = "sampling precision" if what == "sampling" else "training precision"
    print(f"{label}: {choice}", file=sys.stderr, flush=True)
