"""PPO checkpoints: adapter, value head (and value adapter), optimizer, KL controller, RNG states, step
and metrics history, so that a resumed run continues exactly. A checkpoint folder is written under a
temporary name and renamed when complete: it is whole or absent, never half-written."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(out: Path, step: int, policy, optimizer, kl_ctl, history: list[dict], *,
                    keep: int) -> str:
    """Write `out/checkpoint-{step}`; keep the newest `keep` checkpoints. Returns the folder."""
    import numpy as np

    final = out / f"checkpoint-{step}"
    tmp = out / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.model.save_pretrained(tmp)
    torch.save(policy.value_head.state_dict(), tmp / "value_head.pt")
    if policy.value_backbone is not None:
        policy.value_backbone.save_pretrained(tmp / "value_adapter")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "kl_controller": kl_ctl.state_dict(),
                                                        "history": history}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    kept = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in kept[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return str(final)


def load_checkpoint(path: Path, policy, optimizer, kl_ctl) -> tuple[int, list[dict]]:
    """Restore everything `save_checkpoint` wrote into the live objects; returns (step, history)."""
    import numpy as np
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(policy.model, load_file(str(path / "adapter_model.safetensors")))
    policy.value_head.load_state_dict(torch.load(path / "value_head.pt"))
    if policy.value_backbone is not None:
        set_peft_model_state_dict(policy.value_backbone,
                                  load_file(str(path / "value_adapter" / "adapter_model.safetensors")))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt"))
    state = json.loads((path / "trainer_state.json").read_text())
    kl_ctl.load_state_dict(state["kl_controller"])
    rng = torch.load(path / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state["step"], state["history"]
