"""LoRA adapters as saved folders: one adapter made of several, so that a policy trained round after
round on top of the last one stays one adapter on the original base.

A LoRA adapter adds ΔW = s·B·A to each target weight (s = lora_alpha / r, or / √r with rsLoRA). The sum
of several, Σ wᵢ·sᵢ·Bᵢ·Aᵢ, is itself a LoRA adapter of rank Σ rᵢ: A stacked by rows, B by columns with
wᵢ·sᵢ folded in, and lora_alpha = r so that its own scaling is 1. `stack_adapters` writes that adapter;
the weights are exactly the sum (no SVD, no truncation), and every loader of peft adapters reads it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from foundation.errors import ModelError

__all__ = ["stack_adapters", "adapter_rank"]

_WEIGHTS = "adapter_model.safetensors"
_CONFIG = "adapter_config.json"


def _config(folder: Path) -> dict:
    path = folder / _CONFIG
    if not path.is_file():
        raise ModelError(f"{folder}: no {_CONFIG} there; expected a folder saved by a LoRA run.")
    config = json.loads(path.read_text())
    for key in ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise ModelError(f"{folder}: its adapter sets {key}={config[key]!r}; only plain LoRA adapters "
                             "(no DoRA, no per-module ranks, no saved modules) can be stacked.")
    return config


def _scaling(config: dict) -> float:
    r, alpha = config["r"], config["lora_alpha"]
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def adapter_rank(folder: str | Path) -> int:
    """The rank of the adapter saved in `folder`."""
    return int(_config(Path(folder))["r"])


def stack_adapters(parts: list[tuple[str | Path, float]], out: str | Path) -> Path:
    """Write to `out` the adapter whose ΔW is Σ weight · ΔW of each `(folder, weight)` in `parts` (in
    order: the first part's rank comes first in A and B). All parts must adapt the same modules of the
    same base; the tokenizer files of the last part are copied beside it."""
    import torch
    from safetensors.torch import load_file, save_file

    folders = [Path(p) for p, _ in parts]
    configs = [_config(f) for f in folders]
    targets = [sorted(c["target_modules"]) if isinstance(c["target_modules"], list) else c["target_modules"]
               for c in configs]
    if any(t != targets[0] for t in targets):
        raise ModelError("cannot stack adapters of different target modules: "
                         f"{dict(zip(map(str, folders), targets))}")
    tensors = [load_file(str(f / _WEIGHTS)) for f in folders]
    if any(set(t) != set(tensors[0]) for t in tensors):
        raise ModelError(f"cannot stack adapters that adapt different layers: {', '.join(map(str, folders))}")
    stacked = {}
    for key in tensors[0]:
        if ".lora_A." in key:
            stacked[key] = torch.cat([t[key].float() for t in tensors], dim=0).contiguous()
        elif ".lora_B." in key:
            stacked[key] = torch.cat([t[key].float() * (w * _scaling(c))
                                      for t, (_, w), c in zip(tensors, parts, configs)], dim=1).contiguous()
        else:
            raise ModelError(f"{folders[0]}: unexpected tensor {key} in a LoRA adapter; cannot stack it.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank = sum(c["r"] for c in configs)
    config = {**configs[-1], "r": rank, "lora_alpha": rank, "use_rslora": False, "inference_mode": True}
    save_file(stacked, str(out / _WEIGHTS))
    (out / _CONFIG).write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                 "vocab.json", "merges.txt", "tokenizer.model"):
        if (folders[-1] / name).is_file():
            shutil.copyfile(folders[-1] / name, out / name)
    return out
