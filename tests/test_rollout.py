"""The generation engines (`align.rollout`): the fused decoder against HF `generate` on real tiny models
(with a LoRA adapter that changes the outputs, a 4-bit base, EOS mid-batch, left padding), the sampling
draw against its distribution, and the engine choice."""

from __future__ import annotations

import pytest
import torch

from align.rollout import SamplingParams, make_sampler
from align.rollout.base import draw, top_p_filter
from align.rollout.fused import FusedDecoder
from foundation.errors import ConfigError
from tests.conftest import _chat_tokenizer, make_tiny_llama


def _policy(folder: str, quantization: str = "none"):
    from align.policy import Policy

    policy = Policy.from_pretrained(folder, lora=True, quantization=quantization, dtype="float32")
    torch.manual_seed(1)
    for name, param in policy.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)           # an adapter that moves the outputs
    policy.model.eval()                                     # no LoRA dropout in the reference forwards
    return policy


def _prompts(tokenizer) -> list[list[int]]:
    texts = ["hello there", "a much longer prompt about the weather and the sea", "why", "tell me a story"]
    return [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=True,
                                          add_generation_prompt=True, return_dict=False) for t in texts]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return _policy(make_tiny_llama(tmp_path_factory.mktemp("rollout-llama"), initializer_range=0.2))


def _greedy(sampler, prompts, tokens=12):
    return [c[0] for c in sampler.sample(prompts, SamplingParams(temperature=0, max_new_tokens=tokens))]


def test_fused_fp32_greedy_equals_hf_generate_with_the_adapter(policy):
    tok = policy.tokenizer
    prompts = _prompts(tok)
    hf = _greedy(make_sampler("hf", policy.model, pad_id=tok.pad_token_id, eos=[]), prompts)
    fused = FusedDecoder(policy.model, torch.float32).sample(prompts, SamplingParams(temperature=0,
                                                                                    max_new_tokens=12), [])
    assert [c.token_ids for c in fused] == [c.token_ids for c in hf]
    for a, b in zip(fused, hf):     # fp32: folded weights and our kernels against 🤗's, ~3e-6 here
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    with policy.model.disable_adapter():                  # the adapter matters: without it, other tokens
        plain = FusedDecoder(policy.model, torch.float32).sample(
            prompts, SamplingParams(temperature=0, max_new_tokens=12), [])
    assert [c.token_ids for c in plain] != [c.token_ids for c in fused]


def test_taking_a_snapshot_leaves_the_model_as_it_was(policy):
    """The snapshot folds adapters into buffers of its own and shares the model's untouched tensors; it
    must never write into the model (fp32: the fold's buffers could alias the model's weights)."""
    before = {name: p.detach().clone() for name, p in policy.model.named_parameters()}
    for dtype in (torch.float32, torch.bfloat16):
        FusedDecoder(policy.model, dtype).sample(_prompts(policy.tokenizer)[:2],
                                                 SamplingParams(temperature=0, max_new_tokens=3), [])
    for name, p in policy.model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_fused_stops_rows_at_eos_and_keeps_the_others_going(policy):
    tok = policy.tokenizer
    prompts = _prompts(tok)
    free = _greedy(make_sampler("hf", policy.model, pad_id=tok.pad_token_id, eos=[]), prompts)
    eos = [free[0].token_ids[2]]                          # a token row 0 emits third: it ends there
    hf = _greedy(make_sampler("hf", policy.model, pad_id=tok.pad_token_id, eos=eos), prompts)
    fused = FusedDecoder(policy.model, torch.float32).sample(prompts, SamplingParams(temperature=0,
                                                                                    max_new_tokens=12), eos)
    assert hf[0].finished and len(hf[0].token_ids) <= 3
    assert [(c.token_ids, c.finished) for c in fused] == [(c.token_ids, c.finished) for c in hf]
    assert any(not c.finished and len(c.token_ids) == 12 for c in fused)


def test_fused_rows_do_not_depend_on_their_batch(policy):
    prompts = _prompts(policy.tokenizer)
    decoder = FusedDecoder(policy.model, torch.float32)
    params = SamplingParams(temperature=0, max_new_tokens=8)
    together = decoder.sample(prompts, params, [])
    alone = [decoder.sample([p], params, [])[0] for p in prompts]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]


def test_bf16_sampler_log_probs_are_close_to_the_trainers(policy):
    """What PPO's `rollout/sampler_kl` measures: the bf16 snapshot's log-probs of its own samples against
    the fp32 model's forward over the same tokens."""
    tok = policy.tokenizer
    prompts = _prompts(tok)
    sampler = make_sampler("fused", policy.model, pad_id=tok.pad_token_id, eos=[])
    completions = [c[0] for c in sampler.sample(prompts, SamplingParams(max_new_tokens=10, seed=0))]
    gaps = []
    with torch.no_grad():
        for prompt, c in zip(prompts, completions):
            ids = torch.tensor([prompt + c.token_ids])
            logits = policy.model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
            exact = logits.log_softmax(-1).gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(1)
            gaps.append((exact - torch.tensor(c.logprobs)).abs())
    gaps = torch.cat(gaps)
    assert gaps.max() < 0.25 and gaps.mean() < 0.05


def test_fused_runs_a_4bit_base_as_its_dequantized_weights(tmp_path):
    pytest.importorskip("bitsandbytes")
    policy = _policy(make_tiny_llama(tmp_path / "llama64", hidden_size=64, initializer_range=0.2), "4bit")
    tok = policy.tokenizer
    prompts = _prompts(tok)
    hf = _greedy(make_sampler("hf", policy.model, pad_id=tok.pad_token_id, eos=[]), prompts, 6)
    fused = FusedDecoder(policy.model, torch.float32).sample(prompts, SamplingParams(temperature=0,
                                                                                    max_new_tokens=6), [])
    agree = sum(a.token_ids[0] == b.token_ids[0] for a, b in zip(fused, hf))
    assert agree >= 3                                        # bnb's kernel vs dequantized fp32: near-equal
    for a, b in zip(fused, hf):
        assert a.logprobs[0] == pytest.approx(b.logprobs[0], abs=0.15)    # bnb computes in bf16


def test_seeded_sampling_is_reproducible_and_seeds_differ(policy):
    tok = policy.tokenizer
    sampler = make_sampler("fused", policy.model, pad_id=tok.pad_token_id, eos=[])
    prompts = _prompts(tok)
    a = sampler.sample(prompts, SamplingParams(n=2, max_new_tokens=8, seed=3))
    b = sampler.sample(prompts, SamplingParams(n=2, max_new_tokens=8, seed=3))
    c = sampler.sample(prompts, SamplingParams(n=2, max_new_tokens=8, seed=4))
    ids = lambda out: [[x.token_ids for x in group] for group in out]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert all(len(group) == 2 for group in a)


def test_draw_follows_the_distribution():
    probs = torch.tensor([0.5, 0.0, 0.3, 0.15, 0.05])
    logprobs = probs.log().expand(20000, 5)
    tokens = draw(logprobs, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5).float() / len(tokens)
    assert freq[1] == 0                                      # a zero-probability token is never drawn
    assert torch.allclose(freq, probs, atol=0.012)           # 3.4 standard errors (0.0035 at p = 0.5)


def test_top_p_filter_matches_transformers():
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 3
    for p in (0.3, 0.9):
        ours = top_p_filter(logits, p)
        theirs = TopPLogitsWarper(p)(None, logits.clone())
        assert torch.equal(ours.isinf(), theirs.isinf())


def test_auto_falls_back_to_hf_with_a_notice_where_fused_cannot_run(tmp_path, capsys, policy):
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = _chat_tokenizer()
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2))
    sampler = make_sampler("auto", gpt2, pad_id=tok.pad_token_id, eos=[tok.eos_token_id])
    assert sampler.name == "hf"
    assert "fused engine cannot run this model (its architecture (gpt2)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="'fused' cannot run this model.*gpt2"):
        make_sampler("fused", gpt2, pad_id=tok.pad_token_id, eos=[])
    assert make_sampler("auto", policy.model, pad_id=0, eos=[]).name == "fused"
    with pytest.raises(ConfigError, match="engine 'nope'.*auto, hf, fused, vllm"):
        make_sampler("nope", policy.model, pad_id=0, eos=[])


def test_vllm_on_a_cpu_model_says_what_to_do(policy):
    with pytest.raises(ConfigError, match="vllm|vLLM"):
        make_sampler("vllm", policy.model, pad_id=0, eos=[])


def test_policy_generate_names_its_engine(policy):
    out = policy.generate(["hello there", "why"], n=2, max_new_tokens=5, seed=0)
    assert [len(g) for g in out] == [2, 2]
    assert {g.sampling["engine"] for gs in out for g in gs} == {"fused"}
    assert all(len(g.token_ids) == len(g.logprobs) <= 5 for gs in out for g in gs)
    hf = policy.generate(["hello there"], n=1, max_new_tokens=5, temperature=0, engine="hf")
    fused = policy.generate(["hello there"], n=1, max_new_tokens=5, temperature=0, engine="fused")
    assert hf[0][0].sampling["engine"] == "hf" and len(fused[0][0].token_ids) >= 1


@pytest.mark.gpu
def test_vllm_samples_the_current_weights_on_a_gpu(tmp_path):
    pytest.importorskip("vllm")
    from align.policy import Policy

    policy = Policy.from_pretrained("builtin:smollm2-135m-instruct", lora=True, dtype="bfloat16")
    policy.model.to("cuda")
    tok = policy.tokenizer
    prompts = _prompts(tok)
    vllm = make_sampler("vllm", policy.model, pad_id=tok.pad_token_id, eos=[])
    hf = make_sampler("hf", policy.model, pad_id=tok.pad_token_id, eos=[])
    a, b = _greedy(vllm, prompts, 8), _greedy(hf, prompts, 8)
    assert sum(x.token_ids == y.token_ids for x, y in zip(a, b)) >= 3
    for name, param in policy.model.named_parameters():          # a new adapter: vLLM must follow it
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    vllm.refresh()
    c, d = _greedy(vllm, prompts, 8), _greedy(hf, prompts, 8)
    assert sum(x.token_ids == y.token_ids for x, y in zip(c, d)) >= 3
