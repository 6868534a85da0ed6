"""A store written by an earlier schema opens with every label, answer, account and setting, on SQLite
and on PostgreSQL, and its queue goes on where it stopped.

`tests/data/store-schema4.db` was written through `LabelStore`'s API at schema 4 (pairs and tasks in
their own tables): accounts (an admin, a lockout, an imported labeler), training, gold and a closed
evaluation batch of pairs, labels with request ids, an undo, a skip, open claims, ratings and a ranking.
`store-schema4.json` holds what that store returned then. For PostgreSQL its rows are copied into a
database brought to schema 4 by the same migrations, then opened."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from labeling_app import LabelStore
from labeling_app.database import parse_store_url
from labeling_app.postgres import PostgresDatabase
from labeling_app.schema import SCHEMA_VERSION, migrate

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "store-schema4.json").read_text())
TABLES = ("meta", "prompts", "responses", "labelers", "lockouts", "batches", "pairs", "assignments", "labels",
          "retractions", "tasks", "task_claims", "task_answers")


def schema4_store(store_url) -> str:
    url = store_url("old")
    if url.startswith("sqlite"):
        shutil.copy(DATA / "store-schema4.db", parse_store_url(url).target)
        return url
    db = PostgresDatabase(parse_store_url(url))
    assert migrate(db, target=4) == (0, 4)
    old = sqlite3.connect(DATA / "store-schema4.db")
    with db.write() as conn:
        conn.execute("DELETE FROM meta")
        for table in TABLES:
            cursor = old.execute(f"SELECT * FROM {table}")
            columns = [c[0] for c in cursor.description]
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                             f"VALUES ({', '.join('?' * len(columns))})", cursor.fetchall())
        db.resync_identities(conn)
    db.close()
    return url


def test_a_schema_4_store_opens_with_every_label_and_account(store_url):
    store = LabelStore(schema4_store(store_url))
    assert store.migrated_from == 4
    assert store.read("SELECT value FROM meta WHERE key = 'schema_version'")[0][0] == str(SCHEMA_VERSION)
    assert [list(label.__dict__.values()) for label in store.labels(include_retracted=True)] == \
        EXPECTED["labels"]
    assert [label.id for label in store.labels()] == EXPECTED["live"]
    assert sorted(store.retracted_ids()) == EXPECTED["retracted"]
    answers = store.tasks.answers()            # renumbered after the pairs' labels, in the same order
    assert [list(a.__dict__.values())[1:-1] for a in answers] == [a[1:] for a in EXPECTED["answers"]]
    assert min(a.id for a in answers) > max(label[0] for label in EXPECTED["labels"])
    assert [p.pair_id for p in store.pairs(include_evaluation=True)] == EXPECTED["pairs"]
    assert store.evaluation_batches() == EXPECTED["evaluation_batches"]
    assert [list(x) for x in store.accounts.labelers()] == EXPECTED["labelers"]
    assert [name for name, *_ in store.accounts.lockouts()] == EXPECTED["lockouts"]
    assert [store.k, store.gold_rate] == EXPECTED["settings"]
    assert store.loop_status()["round"] == EXPECTED["loop_round"]
    assert [t[0] for t in store.tasks.tasks("ranking")] == EXPECTED["rankings"]
    assert [t[0] for t in store.tasks.tasks("rating")] == EXPECTED["ratings"]
    assert store.remaining() == EXPECTED["remaining"]
    assert store.accounts.authenticate("ann", "pw-ann-1") and not store.accounts.authenticate("ann", "wrong")
    assert store.accounts.role("ada") == "admin"
    assert store.accounts.is_locked("cyd")


def test_the_queue_goes_on_where_the_old_store_stopped(store_url):
    store = LabelStore(schema4_store(store_url), gold_rate=0.0, change_settings=True, seed=1)
    open_pair = store.next_assignment("ann")                     # ann's open claim survived
    assert open_pair.pair_id not in {label.pair_id for label in store.labels(labeler="ann")}
    label = store.submit("ann", open_pair.pair_id, "A", 2, request_id="after-migration")
    assert label.id == max(a.id for a in store.tasks.answers()) + 1   # ids go on past the copied ones
    assert store.submit("ann", open_pair.pair_id, "A", 2, request_id="after-migration") == label
    assert store.undo("ann") == label
    assert store.tasks.next("ann", "rating") is not None          # ann's open rating claim
    fresh = store.tasks.next("ann", "ranking")                    # the ranking ann has not seen, then
    store.tasks.submit_ranking("ann", fresh.task_id, [1, 2, 3])
    skipped = store.tasks.next("ann", "ranking")                  # the one she skipped at schema 4
    assert {fresh.task_id, skipped.task_id} == set(EXPECTED["rankings"])
    with pytest.raises(Exception, match="already"):
        store.submit("bob", EXPECTED["labels"][3][1], "A", 1)     # bob labeled that pair at schema 4
