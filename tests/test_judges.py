"""Judges and reward functions given by name."""

import random

import pytest

from foundation.errors import ConfigError
from foundation.judges import load_judge, vader_judge, vader_score
from reward.functions import load_reward_function


def test_vader_judge_prefers_the_warmer_response_with_strength():
    warm, cold = "I love it, wonderful and great!", "I hate it, awful."
    assert vader_score(warm) > 0.5 > -0.5 > vader_score(cold)
    assert vader_judge("p", warm, cold) == ("A", 4)
    assert vader_judge("p", cold, warm) == ("B", 4)
    assert vader_judge("p", "a table", "a chair") == ("tie", 1)


def test_vader_judge_with_bradley_terry_noise_follows_its_probability():
    rng = random.Random(0)
    a, b = "good", "bad"          # compound 0.44 vs -0.54: P(A) = σ(0.98 / 0.5) ≈ 0.877
    picks = [vader_judge("p", a, b, temperature=0.5, rng=rng)[0] for _ in range(2000)]
    assert picks.count("A") / 2000 == pytest.approx(0.877, abs=0.03)


def test_load_by_name(tmp_path, monkeypatch):
    (tmp_path / "judges_mod.py").write_text("def j(p, a, b):\n    return ('B', 1)\n"
                                            "def r(ps, rs):\n    return [1.0] * len(rs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_judge("vader") is vader_judge
    assert load_judge("judges_mod:j")("p", "a", "b") == ("B", 1)
    assert load_reward_function("judges_mod:r")(["p"], ["x"]) == [1.0]
    assert load_reward_function("vader")(["p"], ["I love it"])[0] > 0
    with pytest.raises(ConfigError, match="must be `vader` or `module:function`"):
        load_judge("vaderx")
    with pytest.raises(ConfigError, match="cannot load judge 'judges_mod:nope'"):
        load_judge("judges_mod:nope")
