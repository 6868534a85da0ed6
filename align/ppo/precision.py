"""How PPO's forwards compute: the autocast dtype `mixed_precision` asks for on the device (bf16 only
where the hardware multiplies it natively, `foundation.precision`), the frozen base's dtype under it,
the model made ready for it, and, with `torch_compile`, the compiler's checks and its activation memory
budget."""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack

import torch

from foundation.errors import ConfigError
from foundation.precision import autocast_dtype, frozen_base_dtype

__all__ = ["forward_context", "base_dtype", "prepare_for_autocast", "check_compiler"]


def forward_context(config, device: torch.device) -> ExitStack:
    """Context of every forward of the training model: autocast as `mixed_precision` says and, with
    `torch_compile`, the activation memory budget that the compiler partitions its graphs by (set here
    rather than for the whole process, whose other compiled code it would change)."""
    stack = ExitStack()
    dtype = autocast_dtype(config.mixed_precision, device.type)
    if dtype:
        stack.enter_context(torch.autocast(device.type, dtype=dtype))
    if config.torch_compile and config.activation_memory_budget < 1:
        import torch._functorch.config as functorch_config

        stack.enter_context(functorch_config.patch(activation_memory_budget=config.activation_memory_budget))
    return stack


def base_dtype(config, device: torch.device) -> str:
    """The dtype the base loads in: bf16 under bf16 autocast (`foundation.precision.frozen_base_dtype`;
    the adapter and the value head stay fp32)."""
    return frozen_base_dtype(config, config.mixed_precision, device.type)


def prepare_for_autocast(model, config, device: torch.device) -> None:
    """Under autocast, peft's casts of every LoRA input to the adapter's fp32 (which autocast then casts
    back to bf16 for the matmul) are only copies: off. On a CPU in bf16, plain attention: PyTorch's CPU
    flash-attention backward is slow in bf16 (plain attention makes a forward + backward of 8 x 75
    tokens through SmolLM2-135M 1.25x faster; in fp32 the two are equal)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    dtype = autocast_dtype(config.mixed_precision, device.type)
    if dtype is None:
        return
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False
    if device.type == "cpu" and dtype == torch.bfloat16:
        model.get_base_model().set_attn_implementation("eager")


def check_compiler(config, device: torch.device) -> None:
    """`torch_compile` needs a C++ compiler on a CPU, and a torch that knows the activation memory
    budget when one is set: a clear error naming the field otherwise."""
    if device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        raise ConfigError("torch_compile: true needs a C++ compiler on a CPU (torch.compile's inductor "
                          "writes C++ kernels): install one (apt-get install g++, or set CXX), or set "
                          "torch_compile: false.")
    import torch._functorch.config as functorch_config

    if config.activation_memory_budget < 1 and not hasattr(functorch_config, "activation_memory_budget"):
        raise ConfigError(f"activation_memory_budget: {config.activation_memory_budget} needs a torch with "
                          f"torch._functorch.config.activation_memory_budget (2.4 or newer; this is "
                          f"{torch.__version__}): upgrade torch, or set activation_memory_budget: 1.")
