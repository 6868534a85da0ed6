"""The one labeling queue (labeling_app/queue.py), on SQLite and PostgreSQL: skip, undo, gold and expiry
behave the same for every kind of task (pairs, ratings, rankings), each through its own public API."""

import time

import pytest

from labeling_app import LabelStore
from labeling_app.errors import NotAssignedError
from labeling_app.quality import label_stats
from labeling_app.task_export import gold_agreement, task_stats


def msg(role: str, text: str) -> list[dict]:
    return [{"role": role, "content": text}]


class Pairs:
    """The pairs' API: `next_assignment`, `submit`, `skip`, `undo`; the stored A is the right answer."""

    kind = "pair"

    def __init__(self):
        self.shown = {}                                 # (labeler, pair) -> shown order when claimed

    def add(self, store, n, *, gold=False, start=0):
        store.add_pairs([{"prompt": msg("user", f"Q{i}"), "response_a": msg("assistant", f"yes {i}"),
                          "response_b": msg("assistant", f"no {i}"), "gold_choice": "A" if gold else None}
                         for i in range(start, start + n)])

    def next(self, store, who):
        a = store.next_assignment(who)
        if a is None:
            return None
        self.shown[who, a.pair_id] = a.shown_order
        return a.pair_id

    def submit(self, store, who, item_id, right=True):
        left_is_a = self.shown[who, item_id] == "AB"
        store.submit(who, item_id, "A" if left_is_a == right else "B")

    def skip(self, store, who, item_id):
        store.skip(who, item_id)

    def undo(self, store, who):
        label = store.undo(who)
        return label and label.pair_id

    def answered(self, store):
        return sorted(label.pair_id for label in store.labels())

    def gold_accuracy(self, store):
        return {name: e["gold_accuracy"] for name, e in label_stats(store)["per_labeler"].items()
                if e["gold_accuracy"] is not None}


class Tasks:
    """Ratings ("good" is right) or rankings (the stored order is right) through `store.tasks`."""

    def __init__(self, kind):
        self.kind = kind
        self.size = 1 if kind == "rating" else 3
        self.shown = {}                                 # (labeler, task) -> shown order when claimed

    def add(self, store, n, *, gold=False, start=0):
        items = [{"prompt": msg("user", f"Q{i}"),
                  "responses": [msg("assistant", f"answer {j} to {i}") for j in range(self.size)]}
                 for i in range(start, start + n)]
        if gold:
            for item in items:
                item["gold"] = "good" if self.kind == "rating" else [1, 2, 3]
        store.tasks.add(self.kind, items)

    def next(self, store, who):
        t = store.tasks.next(who, self.kind)
        if t is None:
            return None
        self.shown[who, t.task_id] = t.shown_order
        return t.task_id

    def submit(self, store, who, item_id, right=True):
        if self.kind == "rating":
            store.tasks.submit_rating(who, item_id, "good" if right else "bad")
        else:
            order = self.shown[who, item_id]
            best_first = [order.index(i) for i in range(3)]               # stored response -> position
            ranks = [0] * 3
            for rank, position in enumerate(best_first if right else best_first[::-1], start=1):
                ranks[position] = rank
            store.tasks.submit_ranking(who, item_id, ranks)

    def skip(self, store, who, item_id):
        store.tasks.skip(who, item_id)

    def undo(self, store, who):
        answer = store.tasks.undo(who, self.kind)
        return answer and answer.task_id

    def answered(self, store):
        return sorted(a.task_id for a in store.tasks.answers(self.kind))

    def gold_accuracy(self, store):
        return task_stats(store)[f"{self.kind}_gold_accuracy"]


@pytest.fixture(params=["pair", "rating", "ranking"])
def kind(request):
    return Pairs() if request.param == "pair" else Tasks(request.param)


def make_store(store_url, **settings):
    store = LabelStore(store_url(), seed=0, **settings)
    for name in ("ann", "bob"):
        store.accounts.add_labeler(name, "pass-" + name)
    return store


def test_a_skipped_item_comes_back_after_the_new_ones(store_url, kind):
    store = make_store(store_url, k=1)
    kind.add(store, 2)
    first = kind.next(store, "ann")
    kind.skip(store, "ann", first)
    with pytest.raises(NotAssignedError, match="nothing to skip"):
        kind.skip(store, "ann", first)
    second = kind.next(store, "ann")
    assert second != first
    kind.submit(store, "ann", second)
    assert kind.next(store, "ann") == first                      # nothing new left: the skipped one
    kind.submit(store, "ann", first)
    assert kind.next(store, "ann") is None
    assert kind.answered(store) == sorted([first, second])


def test_undo_retracts_the_last_answer_and_brings_its_item_back_first(store_url, kind):
    store = make_store(store_url, k=1)
    kind.add(store, 3)
    first = kind.next(store, "ann")
    kind.submit(store, "ann", first)
    second = kind.next(store, "ann")                              # claimed, not answered
    assert kind.undo(store, "ann") == first
    assert kind.answered(store) == []
    assert kind.next(store, "ann") == first                       # the undone item, before `second`
    assert kind.next(store, "bob") not in (None, first)           # ann holds `first` again
    kind.submit(store, "ann", first)
    assert kind.answered(store) == [first]
    assert kind.next(store, "ann") not in (None, first)
    assert second is not None
    assert kind.undo(store, "bob") is None                        # nothing of bob's to undo


def test_gold_is_mixed_in_not_counted_toward_k_and_measures_each_labeler(store_url, kind):
    store = make_store(store_url, k=1, gold_rate=0.99)
    kind.add(store, 1)
    kind.add(store, 2, gold=True, start=10)
    seen = {"ann": [], "bob": []}
    for who, right in (("ann", True), ("bob", False)):
        while (item_id := kind.next(store, who)) is not None:
            kind.submit(store, who, item_id, right=right)
            seen[who].append(item_id)
    assert seen["ann"][:2] == seen["bob"]                          # gold first, at gold_rate 0.99
    assert len(seen["ann"]) == 3 and len(set(seen["bob"])) == 2    # gold takes more than k = 1 answers
    assert kind.gold_accuracy(store) == {"ann": 1.0, "bob": 0.0}


def test_an_expired_claim_gives_way_and_refuses_a_late_answer(store_url, kind):
    store = make_store(store_url, k=1, claim_timeout=0.2)
    kind.add(store, 1)
    item_id = kind.next(store, "ann")
    assert kind.next(store, "bob") is None                        # ann's claim holds the only item
    time.sleep(0.3)
    assert kind.next(store, "bob") == item_id                      # expired: bob may take it
    kind.submit(store, "bob", item_id)
    with pytest.raises(NotAssignedError, match="expired.*nothing was stored"):
        kind.submit(store, "ann", item_id)
    assert kind.answered(store) == [item_id]


def test_gold_agreement_of_ranks():
    assert gold_agreement([1, 2, 3], [1, 2, 3]) == 1.0
    assert gold_agreement([3, 2, 1], [1, 2, 3]) == 0.0
    assert gold_agreement([1, 3, 2], [1, 2, 3]) == pytest.approx(2 / 3)
    assert gold_agreement([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 3)    # a tie where gold orders
    assert gold_agreement("good", "good") == 1.0 and gold_agreement("bad", "good") == 0.0
