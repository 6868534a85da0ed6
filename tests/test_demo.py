"""The demo's pieces that run without the built-in model (the whole demo is `make demo`)."""

from align.demo import judged_pairs, review_prompts
from reward.judges import vader_judge


def test_prompts_split_is_fixed_and_disjoint():
    train, held_out = review_prompts()
    assert len(train) == 20 and len(held_out) == 10 and not set(train) & set(held_out)
    assert review_prompts() == (train, held_out)


def test_judged_pairs_takes_best_and_worst_by_round_robin():
    texts = ["It is okay.", "I love it, wonderful!", "I hate it, awful.", "Nice enough."]
    best, worst, strength = judged_pairs(vader_judge, "p", texts)
    assert (best, worst, strength) == ("I love it, wonderful!", "I hate it, awful.", 4)
    assert judged_pairs(vader_judge, "p", ["a table", "a chair"]) is None  # no difference: no pair
