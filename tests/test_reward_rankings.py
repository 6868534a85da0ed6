"""Reward models on K-way rankings (reward/rankings.py): the loss is InstructGPT's, each response is
scored once, a rankings file trains through `align reward train`, bad rows are named."""

import json
import math

import pytest
import torch

from foundation.errors import DataError
from reward.loss import bradley_terry_loss, ranking_loss
from reward.rankings import read_rankings
from tests.test_label_server import align


def test_ranking_loss_is_the_mean_over_each_rankings_pairs():
    rewards = torch.tensor([2.0, 0.5, -1.0, 0.3, 0.3])
    ranks = torch.tensor([1, 2, 3, 1, 1])                          # a 3-way ranking, then a tied pair
    got = ranking_loss(rewards, [3, 2], ranks)
    first = bradley_terry_loss(torch.tensor([2.0, 2.0, 0.5]), torch.tensor([0.5, -1.0, -1.0]))
    tie = -0.5 * math.log(1 / (1 + math.exp(-0.0))) * 2            # d = 0: −½ log σ(0) − ½ log σ(0)
    assert got.item() == pytest.approx((first.item() + tie) / 2, abs=1e-6)
    flipped = ranking_loss(rewards, [3, 2], torch.tensor([3, 2, 1, 1, 1]))
    assert flipped > got                                            # a worse order costs more


def write_rankings(path, n=12):
    rows = [{"prompt": [{"role": "user", "content": f"Review thing {i}."}],
             "responses": [f"Great thing {i}, love it.", f"Fine thing {i}.", f"Bad thing {i}, broken."],
             "ranks": [1, 2, 3]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reward_train_on_a_rankings_file(tmp_path, tiny_bert):
    data = write_rankings(tmp_path / "rankings.jsonl")
    out = align("reward", "train", "--model", tiny_bert, "--data", str(data), "--output_dir",
                str(tmp_path / "rm"), "--max_steps", "3", "--per_device_train_batch_size", "4",
                "--max_length", "64")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "12 rankings (36 pairs, each response scored once per ranking)" in out.stdout
    report = json.loads((tmp_path / "rm" / "train_report.json").read_text())
    assert report["data"] == {"rankings": 12} and report["members"][0]["pairs"] == 36


def test_bad_ranking_rows_are_named(tmp_path):
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"prompt": "hi", "responses": ["a", "b"], "ranks": [1, 2]}\n'
                   '{"prompt": "hi", "responses": ["a", "b"], "ranks": [1]}\n')
    with pytest.raises(DataError, match=r"r.jsonl: line 2, field `ranks`: expected 2 integers"):
        read_rankings(str(bad))
