from align.loop.prompts import SUBJECTS, review_prompts


def test_review_prompts_are_fixed_many_and_about_disjoint_subjects():
    train, held_out = review_prompts()
    assert review_prompts() == (train, held_out)
    assert len(train) == 40 and len(held_out) == 120 and len(set(held_out)) == 120
    subject_of = {p: next(s for s in SUBJECTS if f"the {s}" in p) for p in train + held_out}
    assert not {subject_of[p] for p in train} & {subject_of[p] for p in held_out}
    assert len({p.split(" the ")[0] for p in held_out}) >= 5          # several request kinds
