"""The built-in offline models (from PyPI packages): SmolLM2-135M-Instruct and MiniLM-L6."""

import os
import time
from pathlib import Path

import pytest
import torch

from align.policy import load_policy
from foundation.models import resolve_model
from foundation.options import ModelOptions
from reward.backbone import load_reward_backbone

SMOLLM = "builtin:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm_folder() -> Path:
    return Path(resolve_model(SMOLLM))  # converts once into the cache (about 20-35 s), then reuses it


def test_smollm2_answers_paris_greedily(smollm_folder):
    model, tok = load_policy(ModelOptions(model=SMOLLM, lora=False), padding_side="left")
    assert model.num_parameters() == 134_515_008
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"


def test_second_resolve_reuses_the_cache(smollm_folder):
    weights = smollm_folder / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    start = time.perf_counter()
    assert Path(resolve_model(SMOLLM)) == smollm_folder
    assert weights.stat().st_mtime_ns == mtime  # not converted again
    assert time.perf_counter() - start < 1.0      # a path lookup, not a conversion (load time: benchmarks/)
    assert str(smollm_folder).startswith(os.environ.get("ALIGN_CACHE", str(Path.home() / ".cache")))


def test_smollm2_in_4bit_with_lora_trains_one_step(smollm_folder):
    model, tok = load_policy(ModelOptions(model=SMOLLM, quantization="4bit", lora_r=8))
    import bitsandbytes as bnb

    # 7 projections x 30 layers
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 30 * 7
    batch = tok(["The capital of France is Paris."], return_tensors="pt")
    batch["labels"] = batch["input_ids"].clone()
    # bitsandbytes' CPU backend repacks 4-bit weights on their first forward, so the base is compared by
    # what it computes (adapter disabled), not by its packed bytes.
    model.train()  # one code path for every forward: bitsandbytes' CPU kernels differ by mode
    with model.disable_adapter():
        base_before = model(**batch).logits.detach()
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(**batch).loss.backward()
    opt.step()
    with model.disable_adapter():
        assert torch.equal(model(**batch).logits.detach(), base_before)  # the 4-bit base did not move
    lora_after = dict(model.named_parameters())
    unchanged = [n for n in lora_before if "lora_B" in n and torch.equal(lora_before[n], lora_after[n])]
    assert not unchanged, unchanged[:5]


def test_minilm_reward_backbone_loads_offline():
    model, tok = load_reward_backbone(ModelOptions(model="builtin:minilm-l6", lora=False))
    assert model.config.model_type == "bert" and model.config.num_labels == 1
    batch = tok(["User: hi\n\nAssistant: hello"], return_tensors="pt")
    assert model(**batch).logits.shape == (1, 1)
