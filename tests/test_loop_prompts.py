from align.loop.prompts import review_prompts


def test_review_prompts_are_disjoint_and_fixed():
    train, held_out = review_prompts()
    assert len(train) == 20 and len(held_out) == 10 and not set(train) & set(held_out)
    assert review_prompts() == (train, held_out)
