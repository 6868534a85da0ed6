"""The loop's learnability check: reward models fit on half the prompts' labels predict the other half;
labels they cannot predict above chance turn off the reward model's pairs and the guard's scaling up."""

from __future__ import annotations

import random

import pytest

from foundation.records import PreferenceRecord, write_jsonl
from reward.learnability import above_chance, folds_by_prompt, pooled_accuracy

GOOD, BAD = "I love it, it is great and wonderful", "terrible, I hate it, awful"


def record(i: int, good_wins: bool) -> PreferenceRecord:
    a, b = (GOOD, BAD) if good_wins else (BAD, GOOD)
    return PreferenceRecord(prompt=[{"role": "user", "content": f"Review item {i}"}],
                            chosen=[{"role": "assistant", "content": a}],
                            rejected=[{"role": "assistant", "content": b}])


def test_folds_split_whole_prompts_at_random_but_seeded():
    records = [record(i % 10, True) for i in range(30)]           # every prompt three times
    folds = folds_by_prompt(records, k=2, seed=3)
    prompts = [{x.prompt[0]["content"] for x in fold} for fold in folds]
    assert not prompts[0] & prompts[1] and len(prompts[0]) == len(prompts[1]) == 5
    assert sum(len(f) for f in folds) == 30
    assert folds == folds_by_prompt(records, k=2, seed=3)
    assert any(folds_by_prompt(records, k=2, seed=s)[0] != folds[0] for s in range(4, 8))


def test_pooled_accuracy_and_the_one_sided_test_against_chance():
    pooled = pooled_accuracy([(0.6, 60), (0.5, 40)])
    assert pooled["accuracy"] == pytest.approx(0.56) and pooled["n"] == 100
    low, high = pooled["interval"]
    assert 0.46 < low < 0.47 and 0.65 < high < 0.66                # Wilson 95% of 56 / 100
    # one-sided 5% (Wilson lower bound at z 1.645 above ½): the demo's 0.59 over 120 passes, 0.54 does not
    assert above_chance(0.59, 120) and not above_chance(0.54, 120)
    assert above_chance(0.75, 32) and not above_chance(0.62, 32) and not above_chance(1.0, 0)


def loop_with_labels(tiny_bert, tmp_path, records):
    from align.loop import LoopConfig
    from align.loop.config import RewardSection
    from align.loop.run import Loop

    tmp_path.mkdir(parents=True, exist_ok=True)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"Write a review of thing {i}\n" for i in range(6)))
    loop = Loop(LoopConfig(prompts=str(prompts), output_dir=str(tmp_path / "loop"),
                           judge="tests.test_loop:longer_judge", rm_pairs=True,
                           reward=RewardSection(model=tiny_bert, learning_rate=2e-3, max_length=32,
                                                num_train_epochs=6)))
    write_jsonl(records, loop.state.dir(1) / "preferences.jsonl")
    return loop


def test_labels_a_reward_model_can_learn_pass_and_coin_flips_do_not(tiny_bert, tmp_path):
    from align.loop.stages import _learnability

    consistent = [record(i, True) for i in range(32)]
    check = _learnability(loop_with_labels(tiny_bert, tmp_path / "a", consistent), 1, consistent)
    assert check["n"] == 32 and check["accuracy"] >= 0.9 and check["above_chance"]
    # which answer wins is a coin flip per item: nothing that holds beyond the labels a model fits on
    flips = [record(i, random.Random(1000 + i).random() < 0.5) for i in range(32)]
    check = _learnability(loop_with_labels(tiny_bert, tmp_path / "b", flips), 1, flips)
    assert check["n"] == 32 and not check["above_chance"]
    assert not (tmp_path / "b" / "loop" / "round-1" / "learnability").exists()     # fold models removed


def test_unlearnable_labels_train_dpo_on_the_human_labels_alone(tiny_bert, tmp_path):
    from align.loop.stages import _dpo_data, learnable

    loop = loop_with_labels(tiny_bert, tmp_path, [record(i, True) for i in range(4)])
    assert learnable(loop, 1)                                     # no check ran: nothing held back
    loop.state.round(1)["reward"] = {"learnability": {"accuracy": 0.5, "n": 4, "interval": [0.15, 0.85],
                                                      "above_chance": False}}
    data = _dpo_data(loop, 1, new_only=False)
    assert data == loop.state.dir(1) / "preferences.jsonl"       # the labels, no reward-model pairs added
    assert not learnable(loop, 1)


def test_labels_of_one_prompt_cannot_be_split_and_are_not_found_learnable(tiny_bert, tmp_path):
    from align.loop.stages import _learnability

    one_prompt = [record(0, True) for _ in range(6)]
    check = _learnability(loop_with_labels(tiny_bert, tmp_path, one_prompt), 1, one_prompt)
    assert check["n"] == 0 and not check["above_chance"] and check["interval"] == [0.0, 1.0]
