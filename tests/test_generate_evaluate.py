"""Policy sampling (left padding, EOS, log-probs), `align generate` candidates, `align evaluate`."""

import json

import pytest

from align.cli import main
from align.evaluate import evaluate_policy, sequence_logprobs, token_kl, win_rate_from_judge
from align.policy import Policy
from foundation.candidates import read_candidates, read_prompts

SHORT = [{"role": "user", "content": "hi"}]
LONG = [{"role": "user", "content": "Write a short review of the coffee shop, please, in detail."}]


@pytest.fixture(scope="module")
def policy(tiny_llama):
    return Policy.from_pretrained(tiny_llama)


def test_greedy_output_does_not_depend_on_batch_padding(policy):
    alone = policy.generate([SHORT], temperature=0, max_new_tokens=8)[0][0]
    batched = policy.generate([LONG, SHORT], temperature=0, max_new_tokens=8, batch_size=2)[1][0]
    assert alone.token_ids == batched.token_ids and alone.text == batched.text


# hf: fp32, cached decoding steps against one teacher-forced forward (~2e-6 a sum); fused samples in bf16
@pytest.mark.parametrize("engine, tolerance", [("hf", 1e-3), ("fused", 0.05)])
def test_sampling_logprobs_match_teacher_forced_scores(policy, engine, tolerance):
    gens = policy.generate([SHORT, LONG], n=2, temperature=1.0, max_new_tokens=6, seed=3, engine=engine)
    assert [len(g) for g in gens] == [2, 2]
    flat = [g for pair in gens for g in pair]
    for g in flat:
        assert len(g.logprobs) == len(g.token_ids) > 0 and all(lp <= 0 for lp in g.logprobs)
        assert g.sampling["engine"] == engine
    forced = sequence_logprobs(policy, [SHORT, SHORT, LONG, LONG], [g.token_ids for g in flat])
    assert forced == pytest.approx([sum(g.logprobs) for g in flat], abs=tolerance)


def test_stops_at_eos_and_flags_cut_responses(policy):
    eos = policy.tokenizer.eos_token_id
    gens = policy.generate([SHORT] * 4, temperature=1.0, max_new_tokens=3, seed=0)
    for (g,) in gens:
        assert g.finished == (g.token_ids[-1] == eos)
        assert eos not in g.token_ids[:-1]
        assert g.finished or len(g.token_ids) == 3


def test_generate_command_writes_candidates_with_provenance(tiny_llama, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Review the kettle.\nReview the tent.\n")
    out = tmp_path / "cands.jsonl"
    assert main(["generate", "--model", tiny_llama, "--prompts", str(prompts), "--n", "3", "--out", str(out),
                 "--max_new_tokens", "5", "--temperature", "0.9"]) == 0
    sets = read_candidates(out)
    assert [s.prompt for s in sets] == [[{"role": "user", "content": "Review the kettle."}],
                                        [{"role": "user", "content": "Review the tent."}]]
    c = sets[0].responses[0]
    assert len(sets[0].responses) == 3 and c.model == tiny_llama and c.adapter is None
    assert c.sampling == {"temperature": 0.9, "top_p": 1.0, "max_new_tokens": 5, "seed": 0,
                          "engine": "fused"}
    assert c.logprobs and len(c.logprobs) <= 5
    assert "wrote 2 prompts x 3 responses" in capsys.readouterr().out


def test_read_prompts_from_jsonl_and_preferences(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "a"}) + "\n"
                                      + json.dumps({"prompt": SHORT}) + "\n")
    assert read_prompts(tmp_path / "p.jsonl") == [[{"role": "user", "content": "a"}], SHORT]
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("\n".join(json.dumps({"prompt": p, "chosen": "x", "rejected": "y"})
                               for p in ["q1", "q1", "q2"]))
    assert read_prompts(prefs) == [[{"role": "user", "content": "q1"}], [{"role": "user", "content": "q2"}]]


def test_judge_win_rate_undoes_random_order():
    always_a = lambda prompt, a, b: ("A", 2)  # noqa: E731  a judge with pure position bias
    prefers_policy = lambda prompt, a, b: ("A", 3) if a == "good" else ("B", 3)  # noqa: E731
    n = 200
    assert win_rate_from_judge(prefers_policy, ["p"] * n, ["good"] * n, ["bad"] * n)["win_rate"] == 1.0
    assert win_rate_from_judge(always_a, ["p"] * n, ["good"] * n, ["bad"] * n)["win_rate"] \
        == pytest.approx(0.5, abs=0.1)
    tie = lambda prompt, a, b: ("tie", 1)  # noqa: E731
    result = win_rate_from_judge(tie, ["p"] * 4, ["x"] * 4, ["y"] * 4)
    assert {k: result[k] for k in ("win_rate", "n", "wins", "ties", "losses")} == {
        "win_rate": 0.5, "n": 4, "wins": 0, "ties": 4, "losses": 0}
    assert result["interval"] == pytest.approx([0.15004, 0.84996], abs=1e-5)     # Wilson, n = 4


def test_policy_against_itself_has_zero_kl_and_even_odds(policy):
    report = evaluate_policy(policy, policy, [SHORT, LONG], judge=lambda p, a, b: ("tie", 1),
                             max_new_tokens=5)
    assert report["kl"] == pytest.approx(0.0, abs=1e-6)
    assert report["judge"]["win_rate"] == 0.5
    assert report["length"]["policy_tokens"] == report["length"]["reference_tokens"]


def test_the_reward_models_win_rate_and_the_share_of_labels_its_odds_predict(policy):
    """Outright, a reward margin of ln 3 is a win and 0 a tie (0.75); its Bradley-Terry odds predict
    labelers would prefer the policy on 0.75 and 0.5 of the labels (0.625)."""
    import math

    class Margins:                       # the policy's answers first, then the reference's
        calls = iter([[math.log(3), 0.0], [0.0, 0.0]])

        def score(self, prompts, texts):
            return next(self.calls)

    report = evaluate_policy(policy, policy, [SHORT, LONG], reward_model=Margins(), max_new_tokens=3,
                             kl=False)
    assert report["reward"]["win_rate"] == 0.75
    assert report["reward"]["expected"]["win_rate"] == pytest.approx(0.625)
    low, high = report["reward"]["expected"]["interval"]
    assert low < 0.625 < high


def test_evaluate_command_with_a_plugged_judge(tiny_llama, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_judge.py").write_text(
        "def longer(prompt, a, b):\n"
        "    return ('A', 2) if len(a) > len(b) else ('B', 2) if len(b) > len(a) else ('tie', 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    prompts = tmp_path / "p.txt"
    prompts.write_text("hi\nhello there\n")
    out = tmp_path / "eval"
    assert main(["evaluate", "--policy", tiny_llama, "--reference", tiny_llama, "--prompts", str(prompts),
                 "--judge", "my_judge:longer", "--max-new-tokens", "4", "--out", str(out)]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["judge"]["n"] == 2 and report["kl"] == pytest.approx(0.0, abs=1e-6)
    assert (out / "evaluation.png").stat().st_size > 1000
    assert "judge win rate" in capsys.readouterr().out
    assert main(["evaluate", "--policy", tiny_llama, "--reference", tiny_llama, "--prompts", str(prompts),
                 "--judge", "no_such_module:f"]) == 2


def test_save_adapter_and_merge_give_the_same_policy(tiny_llama, tmp_path):
    import torch

    policy = Policy.from_pretrained(tiny_llama, lora=True, lora_r=4)
    with torch.no_grad():  # move the adapter away from the identity so that merging matters
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    expected = policy.generate([SHORT], temperature=0, max_new_tokens=6)[0][0].token_ids
    policy.save(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    policy.merge_and_save(tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    for folder in ("adapter", "merged"):
        again = Policy.from_pretrained(str(tmp_path / folder))
        assert again.generate([SHORT], temperature=0, max_new_tokens=6)[0][0].token_ids == expected


def test_token_kl_is_the_exact_kl_and_never_negative(tiny_llama):
    """Σ_t KL(π(·|x, y<t) ‖ π_ref(·|x, y<t)) along the sampled response: checked against a direct
    computation for one response, zero for a policy against itself, positive for a moved adapter."""
    import torch

    base = Policy.from_pretrained(tiny_llama)
    moved = Policy.from_pretrained(tiny_llama, lora=True, lora_r=4)
    with torch.no_grad():
        for name, p in moved.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    samples = [g[0] for g in moved.generate([SHORT, LONG], temperature=1.0, max_new_tokens=6, seed=0)]
    ids = [g.token_ids for g in samples]
    assert token_kl(base, base, [SHORT, LONG], ids) == pytest.approx([0.0, 0.0], abs=1e-6)
    kl = token_kl(moved, base, [SHORT, LONG], ids)
    assert all(k > 0 for k in kl)
    tok = base.tokenizer
    prompt = tok(tok.apply_chat_template(SHORT, tokenize=False, add_generation_prompt=True),
                 add_special_tokens=False)["input_ids"]
    row = torch.tensor([prompt + ids[0]])
    moved.model.eval()                          # no LoRA dropout in the direct computation either
    with torch.no_grad():
        logp = moved.model(input_ids=row).logits[0, len(prompt) - 1:-1].log_softmax(-1)
        logq = base.model(input_ids=row).logits[0, len(prompt) - 1:-1].log_softmax(-1)
    # fp32: token_kl's two right-padded rows through `logits_to_keep` against one row's full forward; each
    # token's log-probs (~6 nats) part by ~1e-6, so the small KL (~0.07) by up to 1.5e-6: absolute, not rel
    assert kl[0] == pytest.approx(float((logp.exp() * (logp - logq)).sum()), rel=1e-4, abs=2e-5)
