"""`align dpo` on a tiny Llama: every loss variant runs, QLoRA on this CPU, resume after a kill."""

import json
from pathlib import Path

import pytest

from align.cli import main
from align.dpo.config import DPOConfig
from align.dpo.trainer import _precompute, preference_rows
from reward.errors import ConfigError


def _prefs(tmp_path, n=16):
    path = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"Write a review of product {i}.", "chosen": "I love it, it is great.",
             "rejected": "I hate it.", "margin": (i % 4) / 3} for i in range(n)]
    rows.append({"prompt": "tie", "chosen": "a", "rejected": "b", "tie": True})
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def _adapter(out: Path):
    from safetensors.torch import load_file

    return load_file(str(out / "adapter_model.safetensors"))


def test_rows_drop_ties_and_filter_margins(tmp_path):
    rows, counts = preference_rows(DPOConfig(data=str(_prefs(tmp_path)), min_margin=0.5))
    assert counts["ties_dropped"] == 1 and counts["below_min_margin"] == 8 and len(rows) == 8
    rows, counts = preference_rows(DPOConfig(data=str(_prefs(tmp_path)), ties="keep"))
    assert len(rows) == 17 and counts["ties_dropped"] == 0


def test_precompute_rule():
    base = dict(data="d", per_device_train_batch_size=4)
    assert _precompute(DPOConfig(**base, max_steps=2), 100) is False     # 8 of 100 pairs: per-step is cheaper
    assert _precompute(DPOConfig(**base, max_steps=25), 100) is False    # one epoch: the same cost either way
    assert _precompute(DPOConfig(**base, max_steps=50), 100) is True     # two epochs: precompute once
    assert _precompute(DPOConfig(**base, max_steps=2, precompute_ref_log_probs="true"), 100) is True


def test_config_errors():
    with pytest.raises(ConfigError, match=r"`label_smoothing` must be positive with loss_type robust"):
        DPOConfig(data="d", loss_type="robust")
    with pytest.raises(ConfigError, match=r"`beta` must be positive, got 0.0"):
        DPOConfig(data="d", beta=0.0)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "robust", "conservative", "hinge", "length_normalized"])
def test_each_loss_variant_trains_the_adapter(loss_type, tiny_llama, tmp_path):
    out = tmp_path / "dpo"
    args = ["dpo", "--model", tiny_llama, "--data", str(_prefs(tmp_path)), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--lora_r", "4", "--learning_rate", "1e-2",
            "--loss_type", loss_type, "--save_steps", "100"]
    if loss_type in ("robust", "conservative"):
        args += ["--label_smoothing", "0.1"]
    assert main(args) == 0
    adapter = _adapter(out)
    assert any("lora_B" in n and t.abs().sum() > 0 for n, t in adapter.items())
    meta = json.loads((out / "adapter_config.json").read_text())
    assert meta["base_model_name_or_path"] == tiny_llama


def test_qlora_dpo_on_this_cpu(tiny_llama, tmp_path):
    out = tmp_path / "qdpo"
    assert main(["dpo", "--model", tiny_llama, "--data", str(_prefs(tmp_path)), "--output_dir", str(out),
                 "--max_steps", "2", "--per_device_train_batch_size", "4", "--quantization", "4bit",
                 "--lora_r", "4", "--save_steps", "100", "--learning_rate", "1e-2"]) == 0
    assert any("lora_B" in n and t.abs().sum() > 0 for n, t in _adapter(out).items())


def test_implicit_reward_accuracy_rises_after_dpo(tiny_llama, tmp_path):
    from align.evaluate import implicit_reward_accuracy
    from align.policy import Policy
    from reward.readers import read_preferences

    data = _prefs(tmp_path)
    records = read_preferences(data).records
    out = tmp_path / "dpo"
    assert main(["dpo", "--model", tiny_llama, "--data", str(data), "--output_dir", str(out), "--max_steps", "8",
                 "--per_device_train_batch_size", "4", "--lora_r", "4", "--learning_rate", "2e-2",
                 "--save_steps", "100"]) == 0
    untrained = Policy.from_pretrained(tiny_llama, lora=True, lora_r=4)   # B = 0: policy == reference
    before = implicit_reward_accuracy(untrained, records)
    assert before["accuracy"] == 0.0 and before["mean_margin"] == 0.0 and before["pairs"] == 16
    after = implicit_reward_accuracy(Policy.from_pretrained(str(out)), records)
    assert after["accuracy"] == 1.0 and after["mean_margin"] > 0
