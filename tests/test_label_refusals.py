"""The store's refusals: strict types that name the field, messages that say what really happened,
an idempotent submit (a retried request id gets its original label), and the schema step that adds it."""

import sqlite3

import pytest

from foundation.records import PreferenceRecord
from labeling_app import LabelStore
from labeling_app.errors import LabelingError, NotAssignedError


def record(i: int) -> PreferenceRecord:
    return PreferenceRecord(prompt=[{"role": "user", "content": f"q{i}"}],
                            chosen=[{"role": "assistant", "content": f"good {i}"}],
                            rejected=[{"role": "assistant", "content": f"bad {i}"}])


@pytest.fixture
def store(store_url):
    s = LabelStore(store_url(), k=2, seed=0)
    for name in ("ann", "bob", "cat"):
        s.accounts.add_labeler(name, "pass-" + name)
    s.add_records([record(i) for i in range(4)])
    return s


@pytest.mark.parametrize("field, value, message", [
    ("strength", True, r"strength must be an integer 1-4 .*got True"),
    ("strength", 3.9, r"strength must be an integer 1-4 .*got 3.9"),
    ("strength", "3", r"strength must be an integer 1-4 .*got '3'"),
    ("strength", 5, r"strength must be an integer 1-4 .*got 5"),
    ("rationale", 7, r"rationale must be text \(or empty\), got int 7"),
    ("rationale", ["a"], r"rationale must be text \(or empty\), got list \['a'\]"),
    ("choice", 1, r"choice must be one of A, B, tie, both_bad, got 1"),
    ("request_id", 12, r"request_id must be a string of 1-200 characters, got 12"),
])
def test_wrong_types_are_refused_naming_the_field(store, field, value, message):
    pair = store.next_assignment("ann")
    kwargs = {"choice": "A", "strength": 3, "rationale": "", "request_id": None, field: value}
    with pytest.raises(LabelingError, match=message):
        store.submit("ann", pair.pair_id, kwargs["choice"], kwargs["strength"], kwargs["rationale"],
                     request_id=kwargs["request_id"])
    assert store.labels() == []                                   # nothing stored


def test_a_retried_submit_returns_its_original_label(store):
    pair = store.next_assignment("ann")
    first = store.submit("ann", pair.pair_id, "A", 3, "clear", request_id="req-1")
    again = store.submit("ann", pair.pair_id, "A", 3, "clear", request_id="req-1")
    assert again.id == first.id and len(store.labels()) == 1
    # without a request id, a second submit is a second label, and refused
    with pytest.raises(NotAssignedError, match="has labeled pair .* already"):
        store.submit("ann", pair.pair_id, "A", 3)
    other = store.next_assignment("bob")
    assert store.submit("bob", other.pair_id, "B", 2, request_id="req-1").id != first.id   # per labeler


def test_a_skipped_pair_is_refused_as_skipped(store):
    pair = store.next_assignment("ann")
    store.skip("ann", pair.pair_id)
    with pytest.raises(NotAssignedError, match=r"'ann' skipped pair .*; nothing was stored"):
        store.submit("ann", pair.pair_id, "A", 3)


def test_an_expired_claim_says_whether_the_pair_is_complete(store_url):
    import time

    store = LabelStore(store_url("l", "claim_timeout=1"), k=1, seed=0)
    for name in ("ann", "bob"):
        store.accounts.add_labeler(name, "pw-long")
    store.add_records([record(0)])
    pair = store.next_assignment("ann")
    time.sleep(1.1)                              # ann's claim expires; bob may then claim the pair
    taken = store.next_assignment("bob")
    assert taken.pair_id == pair.pair_id
    expired = r"expired \(after 1 s\); nothing was stored; ask for the next"
    with pytest.raises(NotAssignedError, match=expired):
        store.submit("ann", pair.pair_id, "A", 3)
    store.submit("bob", taken.pair_id, "B", 3)
    with pytest.raises(NotAssignedError, match=r"expired .* has its 1 labels from others"):
        store.submit("ann", pair.pair_id, "A", 3)


def test_a_version_1_store_migrates_and_keeps_its_labels(tmp_path):
    from labeling_app.schema import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";\n"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.close()
    store = LabelStore(f"sqlite:///{path}", k=1)
    assert store.migrated_from == 1
    store.accounts.add_labeler("ann", "pw-long")
    store.add_records([record(0)])
    pair = store.next_assignment("ann")
    assert store.submit("ann", pair.pair_id, "A", 3, request_id="r").id == 1
    assert store.integrity_check() == "ok"


def test_a_replica_cannot_change_k_by_accident_and_all_replicas_read_a_deliberate_change(store_url):
    from foundation.errors import ConfigError

    url = store_url("settings")
    first = LabelStore(url, k=3)
    refused = r"promises k = 3; this opener asked for k = 2.*align label settings"
    with pytest.raises(ConfigError, match=refused):
        LabelStore(url, k=2)
    assert LabelStore(url).k == 3 and LabelStore(url, k=3).k == 3        # the same value, or none, is fine
    LabelStore(url, k=2, change_settings=True)                          # what `align label settings` does
    assert first.k == 2                                                 # the running replica reads it too
    with pytest.raises(ConfigError, match=r"promises gold_rate = 0; this opener asked for gold_rate = 0.1"):
        LabelStore(url, gold_rate=0.1)


def test_settings_command(tmp_path, capsys):
    from align.cli import main

    url = f"sqlite:///{tmp_path}/labels.db"
    LabelStore(url, k=3)
    assert main(["label", "settings", "--store", url]) == 0
    assert "k = 3, gold_rate = 0" in capsys.readouterr().out
    assert main(["label", "settings", "--store", url, "--k", "2"]) == 0
    assert LabelStore(url).k == 2


def test_a_skipped_pair_comes_back_at_the_end_of_the_queue(store):
    first = store.next_assignment("ann")
    store.skip("ann", first.pair_id)
    seen = []
    while (a := store.next_assignment("ann")) is not None and a.pair_id != first.pair_id:
        seen.append(a.pair_id)
        store.submit("ann", a.pair_id, "A", 3)
    assert len(seen) == 3 and a is not None and a.pair_id == first.pair_id   # the other 3 first, then it
    store.submit("ann", first.pair_id, "B", 2)                               # and now it can be labeled
    assert store.next_assignment("ann") is None
    assert sorted(lab.pair_id for lab in store.labels(labeler="ann")) == sorted([*seen, first.pair_id])


def test_a_full_disk_refuses_with_one_message_logs_once_and_recovers(store, caplog):
    """SQLite's page cap stands in for a full disk (the same SQLITE_FULL error). PostgreSQL's lost
    server is tested in test_label_store.py."""
    if store.db.kind != "sqlite":
        pytest.skip("SQLite's page cap: an SQLite store only")
    import logging

    from labeling_app.errors import StorageError

    pair = store.next_assignment("ann")
    store.submit("ann", pair.pair_id, "A", 3)
    conn = store.db.connect()
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    many = [PreferenceRecord(prompt=[{"role": "user", "content": f"long question {i} " + "x" * 2000}],
                             chosen=[{"role": "assistant", "content": "y" * 2000}],
                             rejected=[{"role": "assistant", "content": "z" * 2000}]) for i in range(50)]
    with caplog.at_level(logging.WARNING, logger="labeling_app"):
        for _ in range(20):
            with pytest.raises(StorageError, match="cannot be saved right now.*nothing you submitted before"):
                store.add_records(many)
    assert len([r for r in caplog.records if "cannot write" in r.message]) == 1      # not 20
    assert [lab.labeler for lab in store.labels()] == ["ann"] and len(store.pairs()) == 4   # nothing lost
    conn.execute("PRAGMA max_page_count = 1073741823")                    # space is back: no restart
    assert store.add_records(many) == (50, 0)
    assert store.integrity_check() == "ok"


def test_the_admin_view_shows_lockouts_and_labels_over_time_and_unlocks(store):
    from labeling_app.app import admin_view, unlock_account

    store.accounts.add_labeler("boss", "boss-password", role="admin")
    pair = store.next_assignment("ann")
    store.submit("ann", pair.pair_id, "A", 3)
    store.accounts.lock("bob", 900, "5 wrong passwords within 900 s")
    summary, per_labeler, per_hour, locked, over_time = admin_view(store, "boss")
    assert locked[0][0] == "bob" and "wrong passwords" in locked[0][2]
    # one hour of labels still draws a line: from 0 in the hour before
    assert list(over_time["labeler"]) == ["ann", "ann"] and list(over_time["labels"]) == [0, 1]
    assert (over_time["hour"][1] - over_time["hour"][0]).total_seconds() == 3600
    assert "agreement not measured yet: no pair has two labels" in summary and "None" not in summary
    assert "rating" not in summary                                   # no ratings: no line for them
    store.tasks.add("rating", [{"prompt": [{"role": "user", "content": "Rate me"}],
                                "responses": [[{"role": "assistant", "content": "Gold answer."}]],
                                "gold": "good"}])
    with_gold = LabelStore(store.url, gold_rate=0.99, change_settings=True)
    task = with_gold.tasks.next("ann", "rating")
    with_gold.tasks.submit_rating("ann", task.task_id, "bad")
    summary = admin_view(store, "boss")[0]
    assert "rating answers 0, Krippendorff's alpha (nominal) n/a" in summary   # gold answers train nothing
    assert "rating gold accuracy: ann 0.0" in summary
    assert unlock_account(store, "boss", "bob") == "Unlocked **bob**." and not store.accounts.is_locked("bob")
    with pytest.raises(LabelingError, match="needs an admin account"):
        unlock_account(store, "ann", "bob")


def test_while_a_loop_trains_the_page_says_the_next_batch_is_coming_and_the_admin_sees_the_rounds(store):
    """A loop driving the store publishes its progress there: a labeler whose queue is empty between
    stages is told the next batch is being prepared (not that the work is over), and the admin page shows
    the round, the stage, the labels still wanted and each round's labelers' win rate."""
    from labeling_app.app import AppConfig, admin_view, show_next

    store.accounts.add_labeler("boss", "boss-password", role="admin")
    while (pair := store.next_assignment("ann")) is not None:
        store.submit("ann", pair.pair_id, "A", 3)
    assert "Nothing left to label" in show_next(store, AppConfig(), "ann").status     # no loop: the end
    store.set_loop_status({"round": 2, "rounds": 3, "stage": "policy", "labels_wanted": 4, "evaluations": {
        "1": {"initial": {"win_rate": 0.71, "interval": [0.6, 0.8], "labels": 57, "stopped": "decided"}}}})
    view = show_next(store, AppConfig(), "ann")
    assert view.pair_id is None
    assert "next batch is being prepared (round 2 of 3: training the model)" in view.status
    summary = admin_view(store, "boss")[0]
    assert "**Loop:** round 2 of 3, training the model; 4 labels still wanted." in summary
    assert "Round 1, labelers' win rate of the new model: vs initial: 0.71 [0.60, 0.80] over 57 labels" \
        in summary
    store.set_loop_status({"round": 3, "rounds": 3, "stage": "label", "evaluations": {}})
    assert "Others hold the last pairs of this batch (round 3 of 3)" in \
        show_next(store, AppConfig(), "ann").status
    store.set_loop_status({"round": 3, "rounds": 3, "stage": "finished", "evaluations": {}})
    assert "Nothing left to label" in show_next(store, AppConfig(), "ann").status
