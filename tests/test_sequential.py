"""The anytime-valid win-rate interval (foundation.sequential): it stops early on an overwhelming
result, runs to the end at chance, and its false-positive rate under peeking after every label stays
at most α."""

import random

import pytest

from foundation.sequential import WinRateSequence
from foundation.stats import wilson_interval


def run(outcomes, horizon=240):
    seq = WinRateSequence(horizon=horizon)
    for x in outcomes:
        seq.update(x)
        if seq.decided():
            break
    return seq


def draw(rng, win, tie, n):
    return [1.0 if u < win else 0.5 if u < win + tie else 0.0 for u in (rng.random() for _ in range(n))]


def test_an_overwhelming_result_stops_early_and_a_chance_one_runs_to_the_end():
    rng = random.Random(0)
    strong = run(draw(rng, 0.85, 0.05, 240))
    assert strong.decided() and strong.n < 60 and strong.interval[0] > 0.5
    weak_loss = run(draw(rng, 0.15, 0.05, 240))
    assert weak_loss.decided() and weak_loss.n < 60 and weak_loss.interval[1] < 0.5
    chance = run(draw(rng, 0.4, 0.2, 240))
    assert not chance.decided() and chance.n == 240
    low, high = chance.interval
    assert low < chance.mean < high and high - low < 2 * 0.1     # within ±0.1 at the horizon


def test_the_interval_is_wider_than_wilsons_and_never_grows():
    seq = WinRateSequence(horizon=240)
    widths = []
    for i in range(240):
        seq.update([1.0, 0.0, 0.5][i % 3])
        widths.append(seq.interval[1] - seq.interval[0])
    assert all(b <= a + 1e-12 for a, b in zip(widths, widths[1:]))    # a running intersection
    wilson = wilson_interval(seq.mean, seq.n)
    assert seq.interval[0] <= wilson[0] and seq.interval[1] >= wilson[1]   # the price of peeking
    assert seq.mean == pytest.approx(0.5)


def test_peeking_after_every_label_keeps_false_positives_at_most_alpha():
    """200 evaluations with no true difference (win = loss = 0.4, tie 0.2), each watched after every
    label up to 240: a fixed-n Wilson interval read at every label would declare a winner in about
    a third of them; the sequence in at most 5%."""
    rng = random.Random(1)
    sequential = peeking_wilson = 0
    for _ in range(200):
        outcomes = draw(rng, 0.4, 0.2, 240)
        sequential += run(outcomes).decided()
        total = 0.0
        for n, x in enumerate(outcomes, 1):
            total += x
            low, high = wilson_interval(total / n, n)
            if n >= 10 and (low > 0.5 or high < 0.5):
                peeking_wilson += 1
                break
    assert sequential <= 10 and peeking_wilson > 20


def test_bad_outcomes_are_refused():
    seq = WinRateSequence()
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        seq.update(1.5)
    with pytest.raises(ValueError, match="alpha"):
        WinRateSequence(alpha=0)


def test_an_evaluation_batch_stops_as_soon_as_it_is_decided_and_trains_nothing(tmp_path):
    """The loop's watch over a real store: labels that all favour the new policy close the batch long
    before `eval_labels` (its unlabelled pairs are not served any more); labels at chance run to it. The
    evaluation pairs stay out of `pairs()`, the aggregated records and the queue's training batches."""
    from align.loop.evaluation import EvaluationWatch, comparison_pairs
    from labeling_app.export import aggregate
    from labeling_app.store import LabelStore

    store = LabelStore(f"sqlite:///{tmp_path}/labels.db", k=1, seed=0)
    store.accounts.add_labeler("ann", "a long password 1")
    prompts = [[{"role": "user", "content": f"Review thing {i}"}] for i in range(60)]
    new = [[f"new answer {j} to {i}" for i in range(60)] for j in range(2)]
    old = [[f"old answer {j} to {i}" for i in range(60)] for j in range(2)]
    store.add_pairs([{"prompt": [{"role": "user", "content": "train me"}],
                      "response_a": [{"role": "assistant", "content": "x"}],
                      "response_b": [{"role": "assistant", "content": "y"}]}], batch="round-1/random")
    watches = {}
    for name, seed in (("strong", 1), ("chance", 2)):
        items, sides = comparison_pairs(prompts, new, old, seed=seed, source="eval", limit=100)
        assert len(items) == 100 and sorted(set(sides.values())) == ["A", "B"]   # the new side at random
        tagged = [{**i, "prompt": [{"role": "user", "content": f"{name}: " + i["prompt"][0]["content"]}]}
                  for i in items]
        store.add_pairs(tagged, batch=f"eval-{name}", purpose="evaluation")
        watches[name] = EvaluationWatch(store, f"eval-{name}", {}, max_labels=80)
    for name, watch in watches.items():
        watch.sides = {p.pair_id: ("A" if "new" in p.response_a[0]["content"] else "B")
                       for p in store.pairs(batch=watch.batch)}
    rng = random.Random(0)
    served = 0
    while (a := store.next_assignment("ann")) is not None:
        served += 1
        if a.prompt[0]["content"] == "train me":
            store.submit("ann", a.pair_id, "A")
            continue
        name = a.prompt[0]["content"].split(":")[0]
        new_shown = "A" if "new" in a.left[0]["content"] else "B"
        wins = name == "strong" or rng.random() < 0.5
        store.submit("ann", a.pair_id, new_shown if wins else {"A": "B", "B": "A"}[new_shown])
        watches[name].poll()
    strong, chance = watches["strong"].result(), watches["chance"].result()
    assert strong["stopped"] == "decided" and strong["labels"] < 20 and strong["interval"][0] > 0.5
    assert strong["wins_ties_losses"] == [strong["labels"], 0, 0]
    assert chance["stopped"] == "eval_labels" and chance["labels"] == 80
    assert not watches["chance"].waiting()
    assert chance["interval"][0] < 0.5 < chance["interval"][1]
    assert served == 1 + strong["labels"] + 80                # closed batches serve nothing more
    assert store.remaining(batch="eval-strong") == 0 and store.remaining() == 0
    assert [p.batch for p in store.pairs()] == ["round-1/random"]                  # training pairs only
    assert len(aggregate(store)[0]) == 1 and len(aggregate(store, include_evaluation=True)[0]) == served
    assert store.evaluation_batches() == ["eval-chance", "eval-strong"]
