"""Ratings and K-way rankings in the store (labeling_app/tasks.py), on SQLite and PostgreSQL: k distinct
labelers, answers mapped from the order shown to the order stored, strict inputs. Skip, undo, gold and
expiry, the same for every kind, are in tests/test_label_queue.py."""

import json
import threading

import pytest

from foundation.candidates import Candidate, CandidateSet
from labeling_app import LabelStore
from labeling_app.errors import LabelingError, NotAssignedError
from labeling_app.tasks import check_ranks


def sets(n: int = 3, k: int = 4) -> list[CandidateSet]:
    return [CandidateSet(f"p{i}", [{"role": "user", "content": f"Review thing {i}."}],
                         [Candidate(f"answer {j} to {i}" + "!" * j) for j in range(k)]) for i in range(n)]


@pytest.fixture
def store(store_url):
    s = LabelStore(store_url(), k=2, seed=0)
    for name in ("ann", "bob", "cat"):
        s.accounts.add_labeler(name, "pass-" + name)
    return s


def answer_all(store, user, kind, answer):
    out = []
    while (t := store.tasks.next(user, kind)) is not None:
        out.append((t, store.tasks.submit_rating(user, t.task_id, answer(t)) if kind == "rating"
                    else store.tasks.submit_ranking(user, t.task_id, answer(t))))
    return out


def test_ratings_take_k_distinct_labelers_and_are_idempotent(store):
    assert store.tasks.add_ratings(sets(2, 3)) == (6, 0)
    assert store.tasks.add_ratings(sets(2, 3)) == (0, 6)
    ann = answer_all(store, "ann", "rating", lambda t: "good")
    bob = answer_all(store, "bob", "rating", lambda t: "bad")
    assert len(ann) == len(bob) == 6
    assert store.tasks.next("cat", "rating") is None                  # k = 2 reached everywhere
    assert sorted(store.tasks.counts("rating").values()) == [2] * 6
    t, first = ann[0]
    assert t.responses == [[{"role": "assistant", "content": t.responses[0][0]["content"]}]]
    with pytest.raises(NotAssignedError, match="not assigned to 'ann'"):
        store.tasks.submit_rating("ann", "0000", "good")
    with pytest.raises(NotAssignedError, match=r"'ann' has labeled rating task .* already"):
        store.tasks.submit_rating("ann", t.task_id, "bad")
    answers = store.tasks.answers("rating")
    assert len(answers) == 12 and {a.answer for a in answers} == {"good", "bad"}


def test_rating_inputs_are_strict(store):
    store.tasks.add_ratings(sets(1, 1))
    t = store.tasks.next("ann", "rating")
    for bad in ("great", True, 1, None):
        with pytest.raises(LabelingError, match="rating must be one of good, bad"):
            store.tasks.submit_rating("ann", t.task_id, bad)
    with pytest.raises(LabelingError, match="rationale must be text"):
        store.tasks.submit_rating("ann", t.task_id, "good", rationale=3)
    a = store.tasks.submit_rating("ann", t.task_id, "good", "clear", request_id="r-1")
    assert store.tasks.submit_rating("ann", t.task_id, "good", "clear", request_id="r-1").id == a.id


def test_rankings_map_the_shown_order_to_the_stored_order(store):
    assert store.tasks.add_rankings(sets(2, 4)) == (2, 0)
    stored = {task_id: responses for task_id, _, responses in store.tasks.tasks("ranking")}
    orders = set()
    for user in ("ann", "bob"):
        # rank by the number of "!" (more is better): shown positions -> ranks 1..4
        done = answer_all(store, user, "ranking",
                          lambda t: [4 - r[0]["content"].count("!") for r in t.responses])
        for t, answer in done:
            orders.add(tuple(t.shown_order))
            # stored order: response j has j "!", so its rank is 4 - j whatever the order shown
            assert answer.answer == [4 - j for j in range(4)]
            assert [r[0]["content"].count("!") for r in stored[t.task_id]] == [0, 1, 2, 3]
    assert len(orders) > 1                                             # the order shown is random
    with pytest.raises(LabelingError, match="ranking needs K >= 3"):
        store.tasks.add_rankings(sets(1, 2))


def test_rank_checks_and_ties():
    assert check_ranks([1, 1, 3], 3) == [1, 1, 2]                      # dense: two tied best, then one
    assert check_ranks([2, 1, 2, 3], 4) == [2, 1, 2, 3]
    for bad in ([1, 2], [0, 1, 2], [1, 2, 4], ["1", 2, 3], [True, 2, 3], "1,2,3"):
        with pytest.raises(LabelingError, match="rank"):
            check_ranks(bad, 3)


def test_skip_gives_the_task_to_others_and_claims_are_exclusive(store):
    store.tasks.add_ratings(sets(1, 1))
    t = store.tasks.next("ann", "rating")
    assert store.tasks.next("ann", "rating").task_id == t.task_id      # the open claim comes back
    store.tasks.skip("ann", t.task_id)
    with pytest.raises(NotAssignedError, match="nothing to skip"):
        store.tasks.skip("ann", t.task_id)
    assert store.tasks.next("bob", "rating").task_id == t.task_id
    assert store.tasks.next("ann", "rating").task_id == t.task_id      # nothing new left: it comes back
    assert store.tasks.next("bob", "ranking") is None                  # kinds do not mix


def test_concurrent_raters_never_exceed_k(store_url):
    s = LabelStore(store_url("c"), k=3, seed=0)
    names = [f"r{i:02d}" for i in range(8)]
    for n in names:
        s.accounts.add_labeler(n, "pw-" + n)
    s.tasks.add_ratings(sets(5, 2))
    errors = []

    def work(name):
        store = LabelStore(store_url("c"))
        try:
            answer_all(store, name, "rating", lambda t: "good")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(s.tasks.counts("rating").values()) == [3] * 10
    answers = s.tasks.answers()
    assert len({(a.labeler, a.task_id) for a in answers}) == len(answers) == 30
    assert json.dumps([a.answer for a in answers]).count("good") == 30


def test_raters_from_judges_of_each_kind(tmp_path, monkeypatch):
    from foundation.errors import ConfigError
    from foundation.judges import load_rater
    from labeling_app.client import round_robin_ranks

    vader = load_rater("vader", threshold=0.3)
    assert vader(None, "A wonderful, lovely kettle.") == "good" and vader(None, "It boils water.") == "bad"
    length = load_rater("benchmarks.judges:target_length", threshold=-0.2)    # a rule judge's own score
    assert length(None, " ".join(["word"] * 30)) == "good" and length(None, "short") == "bad"
    (tmp_path / "my_judges.py").write_text(
        "def longer(prompt, a, b):\n    return ('A', 3)\n"
        "def polite(prompt, response):\n    return 'please' in response\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="pairwise judge"):
        load_rater("my_judges:longer")
    polite = load_rater("my_judges:polite")
    assert polite(None, "yes please") == "good" and polite(None, "no") == "bad"
    from foundation.judges import vader_judge

    assert round_robin_ranks(vader_judge, None, ["Awful.", "Wonderful!", "Fine."]) == [3, 1, 2]
