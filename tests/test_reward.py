"""Reward models: the loss against hand-computed values, training, save/load, cross-tokenizer scoring."""

import json
import math

import pytest
import torch

from align.cli import main
from reward.evaluate import expected_calibration_error
from reward.loss import bradley_terry_loss
from reward.model import RewardModel, encode_pair_side


def _ls(x):  # log σ(x)
    return math.log(1 / (1 + math.exp(-x)))


def test_bradley_terry_loss_hand_computed():
    rc, rr = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.5])
    expected = -(_ls(1.0) + _ls(-1.0)) / 2
    # fp32 against Python's float64: a few fp32 ulps (1.2e-7 each) of losses near 1
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, abs=1e-6)
    # margin (Llama 2): −log σ(d − m)
    m = torch.tensor([0.5, 0.0])
    assert bradley_terry_loss(rc, rr, m).item() == pytest.approx(-(_ls(0.5) + _ls(-1.0)) / 2, abs=1e-6)
    # tie on the second pair: −½ log σ(d) − ½ log σ(−d); its margin is ignored
    tie = torch.tensor([0.0, 1.0])
    exp_tie = -(_ls(1.0) + (0.5 * _ls(-1.0) + 0.5 * _ls(1.0))) / 2
    assert (bradley_terry_loss(rc, rr, torch.tensor([0.0, 3.0]), tie).item()
            == pytest.approx(exp_tie, abs=1e-6))
    # centering adds c · mean((rc + rr)²) = 0.1 · (9 + 4) / 2
    assert (bradley_terry_loss(rc, rr, center_coefficient=0.1).item()
            == pytest.approx(expected + 0.65, abs=1e-6))


def test_tie_loss_is_minimal_when_rewards_are_equal():
    d = torch.linspace(-3, 3, 61)
    losses = torch.stack([bradley_terry_loss(x.view(1), torch.zeros(1), tie=torch.ones(1)) for x in d])
    assert d[losses.argmin()].item() == pytest.approx(0.0, abs=1e-6)
    assert losses.min().item() == pytest.approx(math.log(2), abs=1e-6)


def test_ece_hand_computed():
    ece, table = expected_calibration_error([0.95, 0.95, 0.15, 0.15], [1, 0, 0, 0], bins=10)
    # bin 0.9-1.0: conf 0.95, acc 0.5 -> 0.45·½; bin 0.1-0.2: conf 0.15, acc 0 -> 0.15·½
    assert ece == pytest.approx(0.3)
    assert [row["count"] for row in table] == [2, 2]


def test_truncation_drops_prompt_start_never_response(tiny_llama):
    from foundation.models import load_tokenizer

    tok = load_tokenizer(tiny_llama)
    prompt = [{"role": "user", "content": "hello there " * 200}]
    response = [{"role": "assistant", "content": "the coffee was wonderful"}]
    ids, truncated = encode_pair_side(tok, prompt, response, max_length=48)
    assert truncated and len(ids) == 48
    assert tok.decode(ids).endswith("the coffee was wonderful<|im_end|>\n")
    short, was_cut = encode_pair_side(tok, [{"role": "user", "content": "hi"}], response, max_length=48)
    assert not was_cut and tok.decode(short).startswith("<|im_start|>user\nhi")


def _pairs(tmp_path, n=24):
    path = tmp_path / "pairs.jsonl"
    rows = []
    for i in range(n):
        rows.append({"prompt": f"Review product {i}.", "chosen": "I love it, great and wonderful.",
                     "rejected": "I hate it, terrible.", "margin": 1.0 if i % 2 else 0.0})
    rows.append({"prompt": "Tie?", "chosen": "fine", "rejected": "okay", "tie": True})
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.parametrize("backbone", ["tiny_llama", "tiny_bert"])
def test_train_lowers_loss_saves_loads_same_scores(backbone, request, tmp_path, capsys):
    model_dir = request.getfixturevalue(backbone)
    out = tmp_path / "rm"
    data = _pairs(tmp_path)
    before = RewardModel.from_pretrained(model_dir)
    assert main(["reward", "train", "--model", model_dir, "--data", str(data), "--output_dir", str(out),
                 "--max_steps", "30", "--per_device_train_batch_size", "8", "--learning_rate", "1e-2",
                 "--logging_steps", "1", "--save_steps", "30", "--eval_data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "25 pairs (1 ties), 0 truncated" in printed
    state = json.loads((out / "checkpoint-30" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])  # training lowers the loss
    report = json.loads((out / "train_report.json").read_text())
    assert report["eval"]["accuracy"] == 1.0 and report["eval"]["pairs"] == 24 and report["eval"]["ties"] == 1
    assert (out / "reliability.png").stat().st_size > 1000
    rm = RewardModel.from_pretrained(str(out))
    prompts, responses = (["Review product 1.", "Tie?"],
                          ["I love it, great and wonderful.", "I hate it, terrible."])
    s1 = rm.score(prompts, responses)
    s2 = RewardModel.from_pretrained(str(out)).score(prompts, responses)
    assert s1 == pytest.approx(s2, abs=1e-5)
    assert rm.prefer("Review product 3.", "I love it, great and wonderful.", "I hate it, terrible.") > 0.5
    assert before.score(prompts, responses) != pytest.approx(s1, abs=1e-3)  # the weights moved


def test_scores_a_policy_with_another_tokenizer(tiny_llama, tiny_bert):
    """The reward model reads text: a Llama policy's decoded output is scored by a BERT reward model."""
    from foundation.models import load_tokenizer

    policy_tok = load_tokenizer(tiny_llama)
    text = policy_tok.decode(policy_tok("I love this coffee")["input_ids"], skip_special_tokens=True)
    rm = RewardModel.from_pretrained(tiny_bert)
    scores = rm.score(["Review the coffee."] * 3,
                      [text, "I hate it", [{"role": "assistant", "content": text}]])
    assert len(scores) == 3 and scores[0] == pytest.approx(scores[2], abs=1e-6) and scores[0] != scores[1]


def test_ensemble_mean_spread_and_uncertainty(tiny_bert, tmp_path):
    from reward.ensemble import RewardEnsemble, load_scorer

    out = tmp_path / "ens"
    assert main(["reward", "train", "--model", tiny_bert, "--data", str(_pairs(tmp_path, 8)), "--output_dir",
                 str(out), "--max_steps", "2", "--ensemble", "2", "--save_steps", "100"]) == 0
    ens = load_scorer(str(out))
    assert isinstance(ens, RewardEnsemble) and len(ens.members) == 2
    (mean, spread), = ens.score_with_spread(["p"], ["I love it"])
    members = [m.score(["p"], ["I love it"])[0] for m in ens.members]
    assert (mean == pytest.approx(sum(members) / 2)
            and spread == pytest.approx(abs(members[0] - members[1]) / 2))
    assert 0.0 <= ens.uncertainty("p", "I love it", "I hate it") <= 1.0
    assert ens.uncertainty("p", "same", "same") == pytest.approx(1.0)


def test_reward_eval_cli_json(tiny_bert, tmp_path, capsys):
    out = tmp_path / "rm"
    data = _pairs(tmp_path, 8)
    assert main(["reward", "train", "--model", tiny_bert, "--data", str(data), "--output_dir", str(out),
                 "--max_steps", "1"]) == 0
    capsys.readouterr()
    assert main(["reward", "eval", "--model", str(out), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"accuracy", "accuracy_by_margin", "ece", "tie_agreement", "length_reward_correlation",
            "accuracy_chosen_shorter"} <= set(report)
    assert (report["accuracy_by_margin"]["0"]["pairs"] == 4
            and report["accuracy_by_margin"]["(0.5, 1]"]["pairs"] == 4)


def test_qlora_reward_model_trains_on_this_cpu(tiny_llama, tmp_path):
    """A 4-bit base with a LoRA adapter and a full-precision scalar head (the GPU recipe's path)."""
    out = tmp_path / "qrm"
    assert main(["reward", "train", "--model", tiny_llama, "--data", str(_pairs(tmp_path, 8)), "--output_dir",
                 str(out), "--max_steps", "3", "--quantization", "4bit", "--lora", "--lora_r", "4",
                 "--learning_rate", "1e-2", "--save_steps", "100"]) == 0
    from safetensors.torch import load_file

    saved = load_file(str(out / "adapter_model.safetensors"))  # a quantized base keeps its adapter apart
    assert any("lora_B" in n and t.abs().sum() > 0 for n, t in saved.items())
    assert any("score" in n for n in saved)  # the head trains in full and is saved with the adapter
    scores = RewardModel.from_pretrained(str(out)).score(["Review product 1."],
                                                         ["I love it, great and wonderful."])
    assert len(scores) == 1 and math.isfinite(scores[0])


def test_a_reward_model_judges_by_its_rewards_and_draws_from_its_odds(tiny_bert, tmp_path):
    """`--judge reward:PATH`: at temperature 0 the higher reward wins; at temperature 1 each choice is
    drawn from σ(r_A − r_B), so over many draws A wins about that often."""
    import random

    from align.judges import load_judge
    from foundation.errors import ModelError
    from foundation.stats import sigmoid, wilson_interval
    from reward.judge import RewardModelJudge

    out = tmp_path / "rm"
    assert main(["reward", "train", "--model", tiny_bert, "--data", str(_pairs(tmp_path)),
                 "--output_dir", str(out), "--max_steps", "30", "--per_device_train_batch_size", "8",
                 "--learning_rate", "1e-2", "--save_steps", "100"]) == 0
    oracle = load_judge(f"reward:{out}")
    assert isinstance(oracle, RewardModelJudge)
    good, bad = "I love it, great and wonderful.", "I hate it, terrible."
    r_good, r_bad = RewardModel.from_pretrained(str(out)).score(["Review product 3."] * 2, [good, bad])
    assert r_good > r_bad
    assert (oracle("Review product 3.", good, bad)[0] == "A"
            and oracle("Review product 3.", bad, good)[0] == "B")
    assert oracle("Review product 3.", good, good)[0] == "tie"
    noisy = load_judge(f"reward:{out}", temperature=1.0)
    rng = random.Random(0)
    wins = sum(noisy("Review product 3.", good, bad, rng=rng)[0] == "A" for _ in range(400))
    low, high = wilson_interval(wins / 400, 400, z=3.3)
    assert low <= sigmoid(r_good - r_bad) <= high
    with pytest.raises(ModelError, match="no reward model folder"):
        load_judge(f"reward:{tmp_path / 'nothing'}")
