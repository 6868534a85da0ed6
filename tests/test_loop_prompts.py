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


def test_first_turns_of_the_shared_hh_rlhf_conversations_are_requests_without_answers(hh_file):
    """The real-prompt recipe's prompts: each HH-RLHF conversation's first human turn, once."""
    import gzip
    import json

    from align.loop.prompts import split_prompts

    train, held_out = split_prompts(str(hh_file), None, first_turn=True, max_heldout=120)
    assert len(held_out) == 120 and len(train) > 600
    everything = train + held_out
    assert all(len(p) == 1 and p[0]["role"] == "user" and p[0]["content"].strip() for p in everything)
    assert len({p[0]["content"] for p in everything}) == len(everything)
    with gzip.open(hh_file, "rt", encoding="utf-8") as f:
        first = json.loads(f.readline())["chosen"]
    opening = first.split("\n\nHuman: ")[1].split("\n\nAssistant:")[0].strip()
    assert train[0][0]["content"] == opening
    answers = {t.split("\n\nAssistant: ")[1].split("\n\nHuman:")[0].strip() for t in [first]}
    assert not any(p[0]["content"] in answers for p in everything)
