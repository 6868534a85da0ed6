from align.loop.prompts import SUBJECTS, TRAIN_SUBJECTS, review_prompts


def test_review_prompts_are_fixed_many_and_about_disjoint_subjects():
    train, held_out = review_prompts()
    assert review_prompts() == (train, held_out)
    assert len(train) == 240 and len(set(train)) == 240
    assert len(held_out) == 120 and len(set(held_out)) == 120
    subject_of = {p: next(s for s in SUBJECTS if f"the {s}" in p) for p in train + held_out}
    assert not {subject_of[p] for p in train} & {subject_of[p] for p in held_out}
    # the first 40 ask about each training subject once; the rest are their other request kinds
    assert len({subject_of[p] for p in train[:TRAIN_SUBJECTS]}) == TRAIN_SUBJECTS
    assert {subject_of[p] for p in train[TRAIN_SUBJECTS:]} == {subject_of[p] for p in train[:TRAIN_SUBJECTS]}
    assert len({p.split(" the ")[0] for p in held_out}) >= 5          # several request kinds
