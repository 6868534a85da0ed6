"""Stacked LoRA adapters (`foundation.adapters`) and a base loaded with an adapter merged in
(`ModelOptions.merge_adapter`): the loop's stacked rounds rest on both being exact."""

import json

import pytest
import torch

from foundation.adapters import adapter_rank, stack_adapters
from foundation.errors import ModelError


def _adapter(tiny_llama, folder, seed: int, r: int, alpha: int) -> str:
    """A saved LoRA adapter on the tiny model with random (non-zero) A and B."""
    from transformers import AutoModelForCausalLM

    from foundation.models import add_lora

    torch.manual_seed(seed)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_llama), r=r, alpha=alpha, dropout=0.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.2)
    model.save_pretrained(folder)
    return str(folder)


def _merged_weights(tiny_llama, adapter: str | None) -> dict[str, torch.Tensor]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_stacked_adapter_adds_its_parts_with_their_weights(tiny_llama, tmp_path):
    one = _adapter(tiny_llama, tmp_path / "one", seed=1, r=4, alpha=8)      # scaling 2
    two = _adapter(tiny_llama, tmp_path / "two", seed=2, r=2, alpha=2)      # scaling 1
    stacked = stack_adapters([(one, 1.0), (two, 0.5)], tmp_path / "stacked")
    assert adapter_rank(stacked) == 6
    config = json.loads((stacked / "adapter_config.json").read_text())
    assert config["lora_alpha"] == 6 and not config["use_rslora"]
    base = _merged_weights(tiny_llama, None)
    first, second = _merged_weights(tiny_llama, one), _merged_weights(tiny_llama, two)
    got = _merged_weights(tiny_llama, str(stacked))
    moved = 0
    for key, w in base.items():
        expected = w + (first[key] - w) + 0.5 * (second[key] - w)
        assert torch.allclose(got[key], expected, atol=1e-5), key
        moved += not torch.equal(first[key], w)
    assert moved >= 2          # the adapters did change some weights: the comparison means something


def test_merge_adapter_loads_the_base_with_the_adapter_merged_in(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    from foundation.models import load_model
    from foundation.options import ModelOptions

    adapter = _adapter(tiny_llama, tmp_path / "one", seed=3, r=4, alpha=8)
    model, _ = load_model(AutoModelForCausalLM,
                          ModelOptions(model=tiny_llama, lora=True, merge_adapter=adapter),
                          task_type="CAUSAL_LM")
    expected = _merged_weights(tiny_llama, adapter)
    with model.disable_adapter():        # the fresh adapter off: the merged model, the DPO/PPO reference
        got = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
               for k, v in model.state_dict().items() if "lora_" not in k}
    for key, w in expected.items():
        assert torch.allclose(got[key], w, atol=1e-6), key
    fresh = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert fresh and all(p.requires_grad and not p.any() for p in fresh)   # a fresh adapter on top


def test_adapters_of_different_modules_are_refused_by_name(tiny_llama, tmp_path):
    one = _adapter(tiny_llama, tmp_path / "one", seed=1, r=4, alpha=8)
    config = json.loads((tmp_path / "one" / "adapter_config.json").read_text())
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "adapter_config.json").write_text(
        json.dumps({**config, "target_modules": ["q_proj"]}))
    with pytest.raises(ModelError, match="different target modules"):
        stack_adapters([(one, 1.0), (tmp_path / "two", 1.0)], tmp_path / "out")
    with pytest.raises(ModelError, match="no adapter_config.json"):
        stack_adapters([(one, 1.0), (tmp_path / "nothing", 1.0)], tmp_path / "out")
