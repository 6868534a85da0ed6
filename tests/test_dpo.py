"""`align dpo` on a tiny Llama: every loss variant runs, QLoRA on this CPU, resume after a kill."""

import json
import math
from pathlib import Path

import pytest

from align.cli import main
from align.dpo.config import DPOConfig
from align.dpo.trainer import _precompute, preference_rows
from foundation.errors import ConfigError


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


@pytest.mark.parametrize("loss_type",
                         ["sigmoid", "ipo", "robust", "conservative", "hinge", "length_normalized"])
def test_each_loss_variant_trains_the_adapter(loss_type, tiny_llama, tmp_path):
    out = tmp_path / "dpo"
    args = ["dpo", "--model", tiny_llama, "--data", str(_prefs(tmp_path)), "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--lora_r", "4",
            "--learning_rate", "1e-2", "--loss_type", loss_type, "--save_steps", "100"]
    if loss_type in ("robust", "conservative"):
        args += ["--label_smoothing", "0.1"]
    assert main(args) == 0
    adapter = _adapter(out)
    assert any("lora_B" in n and t.abs().sum() > 0 for n, t in adapter.items())
    meta = json.loads((out / "adapter_config.json").read_text())
    assert meta["base_model_name_or_path"] == tiny_llama


@pytest.mark.parametrize("native", ["1", "0"])
def test_the_frozen_base_follows_the_hardware(native, tiny_llama, tmp_path, monkeypatch):
    """With the defaults, where the CPU multiplies bf16 natively the frozen base loads in bf16 (autocast
    would cast each weight to bf16 on every forward), the adapter in fp32; elsewhere all in fp32. A step
    under bf16 autocast over the bf16 base trains the adapter; an explicit dtype wins."""
    import torch

    from align.dpo.trainer import build_dpo_trainer

    monkeypatch.setenv("ALIGN_NATIVE_BF16", native)
    config = DPOConfig(model=tiny_llama, data=str(_prefs(tmp_path)), output_dir=str(tmp_path / "dpo"),
                       max_steps=1, per_device_train_batch_size=4, lora_r=4, learning_rate=1e-2)
    trainer, _ = build_dpo_trainer(config)
    params = dict(trainer.model.named_parameters())
    base = {p.dtype for n, p in params.items() if "lora_" not in n}
    assert base == ({torch.bfloat16} if native == "1" else {torch.float32})
    # the adapter, and TRL's frozen copy of it that serves as the reference ("ref"), stay fp32
    assert {p.dtype for n, p in params.items() if "lora_" in n} == {torch.float32}
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    assert any(p.abs().sum() > 0 for n, p in trainer.model.named_parameters() if "lora_B" in n)
    explicit, _ = build_dpo_trainer(DPOConfig(**{**config.__dict__, "dtype": "float32"}))
    assert {p.dtype for p in explicit.model.parameters()} == {torch.float32}


def test_sft_weight_adds_the_nll_of_the_chosen_responses(tiny_llama, tmp_path):
    """RPO: the loss is DPO's plus sft_weight x the chosen responses' NLL per token (about log V for an
    untrained model, whose next-token distribution is near uniform)."""
    import math

    from transformers import AutoConfig

    from align.dpo.trainer import build_dpo_trainer

    def first_loss(sft_weight: float) -> float:
        config = DPOConfig(model=tiny_llama, data=str(_prefs(tmp_path)),
                           output_dir=str(tmp_path / f"{sft_weight}"), max_steps=1, lora_r=4,
                           per_device_train_batch_size=4, save_steps=100, logging_steps=1,
                           sft_weight=sft_weight)
        trainer, _ = build_dpo_trainer(config)
        trainer.train()
        return trainer.state.log_history[0]["loss"]

    dpo = first_loss(0.0)
    assert dpo == pytest.approx(math.log(2), abs=1e-3)             # the adapter starts at the reference
    nll = (first_loss(5.0) - dpo) / 5.0
    assert nll == pytest.approx(math.log(AutoConfig.from_pretrained(tiny_llama).vocab_size), rel=0.05)
    with pytest.raises(ConfigError, match=r"`sft_weight` must be non-negative"):
        DPOConfig(data="d", sft_weight=-1.0)


def test_qlora_dpo_on_this_cpu(tiny_llama, tmp_path):
    out = tmp_path / "qdpo"
    assert main(["dpo", "--model", tiny_llama, "--data", str(_prefs(tmp_path)), "--output_dir", str(out),
                 "--max_steps", "2", "--per_device_train_batch_size", "4", "--quantization", "4bit",
                 "--lora_r", "4", "--save_steps", "100", "--learning_rate", "1e-2"]) == 0
    assert any("lora_B" in n and t.abs().sum() > 0 for n, t in _adapter(out).items())


def test_implicit_reward_accuracy_rises_after_dpo(tiny_llama, tmp_path):
    from align.evaluate import implicit_reward_accuracy
    from align.policy import Policy
    from foundation.readers import read_preferences

    data = _prefs(tmp_path)
    records = read_preferences(data).records
    out = tmp_path / "dpo"
    assert main(["dpo", "--model", tiny_llama, "--data", str(data), "--output_dir", str(out),
                 "--max_steps", "8", "--per_device_train_batch_size", "4", "--lora_r", "4",
                 "--learning_rate", "2e-2", "--save_steps", "100"]) == 0
    untrained = Policy.from_pretrained(tiny_llama, lora=True, lora_r=4)   # B = 0: policy == reference
    before = implicit_reward_accuracy(untrained, records)
    assert before["accuracy"] == 0.0 and before["mean_margin"] == 0.0 and before["pairs"] == 16
    after = implicit_reward_accuracy(Policy.from_pretrained(str(out)), records)
    assert after["accuracy"] == 1.0 and after["mean_margin"] > 0


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prefix_sharing_gives_the_two_row_log_probs_and_gradients(attention, tiny_llama, monkeypatch):
    """One packed row per pair (prompt · chosen · x · rejected, 4-D mask), projected to the vocabulary only
    where a response token is predicted, against TRL's two rows, every position projected: the same
    per-token log-probs in TRL's layout, the same gradients, with and without truncation."""
    import torch
    import trl.trainer.utils as trl_utils
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.dpo_trainer import DataCollatorForPreference
    from trl.trainer.utils import add_fused_lm_head

    from align.dpo.prefix_sharing import PrefixSharingCollator, share_prefixes
    from align.fused_head import score_labelled_positions_only

    scored = []                         # how many positions each call sends through the output layer
    head = trl_utils._ChunkedLogProbFunction

    class CountingHead(head):
        @staticmethod
        def forward(ctx, hidden, *args):
            scored.append(hidden.shape[0])
            return head.forward(ctx, hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", CountingHead)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation=attention)
    add_fused_lm_head(model)
    model = get_peft_model(model, LoraConfig(r=4, task_type="CAUSAL_LM", target_modules=["q_proj", "v_proj"]))
    for name, p in model.named_parameters():       # B = 0 at init would hide the adapter's gradient path
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(5, 90, (n,), generator=g).tolist()  # noqa: E731
    examples = [{"prompt_ids": ids(p), "chosen_ids": ids(c), "rejected_ids": ids(r)}
                for p, c, r in [(7, 5, 3), (12, 2, 9), (3, 10, 10), (30, 1, 4)]]

    def run(batch, shared):
        handles = [*share_prefixes(model), *score_labelled_positions_only(model)] if shared else []
        model.zero_grad()
        kwargs = {k: v for k, v in batch.items() if k != "completion_mask"}
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        out = model(**kwargs, labels=labels, fused_lm_head=True, use_cache=False)
        (out.log_probs * torch.linspace(1, 2, out.log_probs.shape[0]).unsqueeze(1)).sum().backward()
        for h in handles:
            h.remove()
        return out.log_probs.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    for max_length in (None, 20):
        two_rows = DataCollatorForPreference(pad_token_id=0, max_length=max_length)(examples)
        packed = PrefixSharingCollator(pad_token_id=0, max_length=max_length)(examples)
        assert packed["packed_input_ids"].shape[0] == 4 and two_rows["input_ids"].shape[0] == 8
        scored.clear()
        lp_a, grads_a = run(two_rows, shared=False)
        assert scored == [two_rows["input_ids"][:, 1:].numel()]           # TRL on a CPU: every position
        scored.clear()
        lp_b, grads_b = run(packed, shared=True)
        assert lp_a.shape == lp_b.shape and (lp_a != 0).sum() == (lp_b != 0).sum() > 20
        responses = int((packed["packed_shift_labels"] != -100).sum())
        assert scored == [responses] and responses < packed["packed_input_ids"].numel() / 2
        assert not trl_utils._use_triton(torch.device("cpu"))     # TRL's own calls: as TRL decides
        # fp32: the packed rows' attention runs over other key lengths (other summation orders): <1e-6 here
        assert torch.allclose(lp_a, lp_b, atol=1e-5), (lp_a - lp_b).abs().max()
        for a, b in zip(grads_a, grads_b):
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_dpo_with_and_without_prefix_sharing_trains_the_same_adapter(tiny_llama, tmp_path):
    import torch

    data = str(_prefs(tmp_path))
    adapters = []
    for shared in ("true", "false"):
        out = tmp_path / f"dpo-{shared}"
        assert main(["dpo", "--model", tiny_llama, "--data", data, "--output_dir", str(out),
                     "--max_steps", "3", "--per_device_train_batch_size", "4", "--lora_r", "4",
                     "--learning_rate", "1e-2", "--mixed_precision", "no", "--prefix_sharing", shared,
                     "--save_steps", "100"]) == 0
        adapters.append(_adapter(out))
    assert adapters[0].keys() == adapters[1].keys()
    assert any("lora_B" in n and t.abs().sum() > 0 for n, t in adapters[0].items())
    for name in adapters[0]:        # fp32, 3 Adam steps on the two forwards' rounding: ~1e-7 apart here
        assert torch.allclose(adapters[0][name], adapters[1][name], atol=2e-5, rtol=1e-4), name
    # ...and the shared run did pack: TRL's batches carry the packed rows and the model runs them.
    from align.dpo.trainer import build_dpo_trainer

    trainer, _ = build_dpo_trainer(DPOConfig(model=tiny_llama, data=data, output_dir=str(tmp_path / "x"),
                                             lora_r=4))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert batch["packed_input_ids"].shape[0] == 4 and batch["input_ids"].shape[0] == 8
    hooks = {h.__qualname__.split(".")[0] for h in trainer.model._forward_pre_hooks.values()}
    assert hooks == {"share_prefixes", "score_labelled_positions_only"}
