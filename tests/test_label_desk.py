"""The labeling desk (labeling_app/desk.py): a real app over a real SQLite store, labelled until every
pair has its k labels by simulated labelers through the API, or by people (here a thread at the store)."""

import threading

import pytest

from labeling_app import LabelStore
from labeling_app.desk import LabelingDesk
from labeling_app.errors import LabelingError


def msg(role: str, text: str) -> list[dict]:
    return [{"role": role, "content": text}]


@pytest.fixture
def store(tmp_path):
    store = LabelStore(f"sqlite:///{tmp_path}/labels.db", k=2, seed=0)
    store.add_pairs([{"prompt": msg("user", f"Review {i}?"), "response_a": msg("assistant", f"great {i}"),
                      "response_b": msg("assistant", f"awful {i}")} for i in range(5)], batch="round-1")
    store.add_pairs([{"prompt": msg("user", "Other?"), "response_a": msg("assistant", "a"),
                      "response_b": msg("assistant", "b")}], batch="round-2")
    return store


def prefers_great(prompt, a, b):
    return ("A" if "great" in a else "B"), 3


def test_simulated_labelers_label_the_batches_until_each_pair_has_k(store):
    desk = LabelingDesk(store, simulated=3, judge=prefers_great, seed=0)
    try:
        desk.label(["round-1"], what="test round 1")
        assert desk.url.startswith("http://127.0.0.1:")
    finally:
        desk.close()
    assert store.remaining(batch="round-1") == 0
    labels = [lab for lab in store.labels() if lab.pair_id != store.pairs(batch="round-2")[0].pair_id]
    assert len(labels) == 5 * 2 and len({lab.labeler for lab in labels}) >= 2
    assert all(lab.choice == "A" for lab in labels)                   # "great" is the stored A, whatever
    assert {lab.shown_order for lab in labels} == {"AB", "BA"}        # the order each labeler saw


def test_with_people_the_desk_waits_until_their_labels_are_in(store):
    store.accounts.add_labeler("ann", "pw-ann-1")
    store.accounts.add_labeler("bob", "pw-bob-1")
    desk = LabelingDesk(store)                                        # people: nobody simulated

    def people():
        for who in ("ann", "bob"):
            while (a := store.next_assignment(who, batch="round-2")) is not None:
                store.submit(who, a.pair_id, "tie", 1)

    threading.Timer(1.0, people).start()
    try:
        desk.label(["round-2"], what="test round 2")
    finally:
        desk.close()
    assert store.remaining(batch="round-2") == 0
    assert sorted(lab.labeler for lab in store.labels()) == ["ann", "bob"]


def test_simulated_labelers_need_a_judge(store):
    with pytest.raises(LabelingError, match="need a judge"):
        LabelingDesk(store, simulated=2)
