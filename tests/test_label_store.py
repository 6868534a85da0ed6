"""LabelStore on real SQLite files and a real PostgreSQL server (each test that takes `store` or
`store_url` runs on both): the queue's rules, retractions, gold, priority, quality, export."""

import json
import sqlite3
import threading
import time

import pytest

from foundation.candidates import Candidate, CandidateSet
from foundation.errors import ConfigError
from foundation.records import PreferenceRecord
from labeling_app import AppConfig, LabelStore, label_stats
from labeling_app.app import escape_markdown, record_preference, show_next
from labeling_app.errors import AuthError, LabelingError, NotAssignedError
from labeling_app.export import aggregate, export_dataset
from labeling_app.quality import krippendorff_alpha
from labeling_app.schema import SCHEMA_VERSION
from reward.uncertainty import uncertainty_priority


def record(i: int, chosen="good", rejected="bad") -> PreferenceRecord:
    return PreferenceRecord(prompt=[{"role": "user", "content": f"question {i}"}],
                            chosen=[{"role": "assistant", "content": f"{chosen} {i}"}],
                            rejected=[{"role": "assistant", "content": f"{rejected} {i}"}], source="test")


@pytest.fixture
def store(store_url):
    s = LabelStore(store_url(), k=2, seed=0)
    for name in ("ann", "bob", "cat"):
        s.accounts.add_labeler(name, "pass-" + name)
    s.accounts.add_labeler("boss", "pass-boss", role="admin")
    s.add_records([record(i) for i in range(4)])
    return s


def label_all(store, user, choice="A", strength=3):
    """Label everything open to `user` with `choice` as shown; returns the stored-order choices."""
    out = []
    while (a := store.next_assignment(user)) is not None:
        out.append(store.submit(user, a.pair_id, choice, strength))
    return out


def test_url_and_schema(tmp_path):
    s = LabelStore(f"sqlite:///{tmp_path}/a.db")
    assert s.k == 3 and s.gold_rate == 0.0 and s.migrated_from == 0
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            == str(SCHEMA_VERSION))
    # k is kept in the store: a later open without k sees it (changing it is deliberate)
    LabelStore(f"sqlite:///{tmp_path}/a.db", k=5, change_settings=True)
    assert LabelStore(f"sqlite:///{tmp_path}/a.db").k == 5
    assert LabelStore(f"sqlite:///{tmp_path}/a.db").migrated_from == SCHEMA_VERSION
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    with pytest.raises(LabelingError, match="newer than this align-toolkit"):
        LabelStore(f"sqlite:///{tmp_path}/a.db")
    for bad in ("mysql://x/y", "sqlite://labels.db", f"sqlite:///{tmp_path}/b.db?fast=1",
                "postgresql://ann@localhost:5432", "postgresql://ann@localhost/db?synchronous=off"):
        with pytest.raises(ConfigError):
            LabelStore(bad)


def test_postgresql_schema_versions_and_errors(postgres_server):
    import psycopg

    url = postgres_server.new_database("schema_check")
    s = LabelStore(url)
    assert s.k == 3 and s.migrated_from == 0 and s.integrity_check() == "ok"
    assert LabelStore(url).migrated_from == SCHEMA_VERSION
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(LabelingError, match="newer than this align-toolkit"):
        LabelStore(url)
    # a server that is not there: the URL (password hidden), the reason, what to check
    with pytest.raises(LabelingError, match=r"postgresql://ann:\*\*\*@127.0.0.1:1/labels: cannot open the "
                                            r"label store .*Is the server running") as e:
        LabelStore("postgresql://ann:secret@127.0.0.1:1/labels")
    assert "secret" not in str(e.value)
    big = "z" * 9000                     # longer than a btree entry: uniqueness is kept on its md5
    fresh = LabelStore(postgres_server.new_database("big_text"))
    assert fresh.add_records([record(0, chosen=big)]) == (1, 0)
    assert fresh.add_records([record(0, chosen=big)]) == (0, 1)


def test_k_distinct_labelers_and_no_repeats(store):
    assert store.wanted() == store.remaining() == 8  # 4 pairs, k = 2
    ann = label_all(store, "ann")
    assert store.wanted() == 8 and store.remaining() == 4
    bob = label_all(store, "bob")
    assert len(ann) == len(bob) == 4
    assert label_all(store, "cat") == []            # k = 2 reached everywhere
    assert store.next_assignment("ann") is None     # ann never gets a pair twice
    counts = store.label_counts()
    assert sorted(counts.values()) == [2, 2, 2, 2]
    assert store.remaining() == 0


def test_shown_order_is_random_and_undone(store):
    labels = label_all(store, "ann", choice="A")    # "A" as shown = the left response
    orders = {lab.shown_order for lab in labels}
    assert orders == {"AB", "BA"}                   # seed 0 shows both orders among 4 pairs
    for lab in labels:
        assert lab.choice == ("A" if lab.shown_order == "AB" else "B")
        assert lab.shown_choice == "A"
    stats = label_stats(store)
    assert stats["position_bias_left"] == 1.0


def test_submit_checks(store):
    a = store.next_assignment("ann")
    with pytest.raises(NotAssignedError, match="not assigned to 'bob'"):
        store.submit("bob", a.pair_id, "A", 3)
    with pytest.raises(LabelingError, match="choice must be one of"):
        store.submit("ann", a.pair_id, "left", 3)
    with pytest.raises(LabelingError, match="strength must be an integer 1-4"):
        store.submit("ann", a.pair_id, "A", 7)
    with pytest.raises(AuthError, match="unknown user 'eve'"):
        store.next_assignment("eve")
    store.submit("ann", a.pair_id, "B", 4, "clearer")
    with pytest.raises(NotAssignedError, match="labeled pair .* already"):
        store.submit("ann", a.pair_id, "A", 3)
    assert store.labels()[0].rationale == "clearer"
    assert not store.accounts.authenticate("ann", "wrong") and store.accounts.authenticate("ann", "pass-ann")
    with pytest.raises(AuthError):
        store.accounts.require_admin("ann")
    store.accounts.require_admin("boss")


def test_undo_writes_a_retraction_and_reopens_the_pair(store):
    first = store.next_assignment("ann")
    lab = store.submit("ann", first.pair_id, "A", 2)
    second = store.next_assignment("ann")
    assert second.pair_id != first.pair_id
    undone = store.undo("ann")
    assert undone.id == lab.id
    again = store.next_assignment("ann")
    assert again.pair_id == first.pair_id           # the undone pair comes back first
    assert store.labels() == []
    assert [x.id for x in store.labels(include_retracted=True)] == [lab.id]   # history kept
    store.submit("ann", again.pair_id, "B", 4)
    assert [x.strength for x in store.labels()] == [4]
    assert store.undo("bob") is None


def test_skip_and_claim_expiry(store_url):
    s = LabelStore(store_url("e", "claim_timeout=0.2"), k=1)
    for name in ("ann", "bob"):
        s.accounts.add_labeler(name, "pw-" + name)
    s.add_records([record(0), record(1)])
    a = s.next_assignment("ann")
    assert s.next_assignment("ann").pair_id == a.pair_id        # an open claim is returned again
    b = s.next_assignment("bob")
    assert b.pair_id != a.pair_id                               # k = 1: ann's claim holds the pair
    s.skip("bob", b.pair_id)
    # skipped: back at the end of bob's queue, and here nothing else is free for him
    assert s.next_assignment("bob").pair_id == b.pair_id
    s.submit("bob", b.pair_id, "B", 2)
    time.sleep(0.3)
    again = s.next_assignment("bob")                            # ann's claim expired: the pair is free
    assert again.pair_id == a.pair_id
    with pytest.raises(NotAssignedError, match="expired"):
        s.submit("ann", a.pair_id, "A", 3)                      # too late: nothing stored for ann
    s.submit("bob", a.pair_id, "A", 3)
    assert [(lab.labeler, lab.pair_id) for lab in s.labels()] == [("bob", b.pair_id), ("bob", a.pair_id)]


def test_gold_pairs_and_accuracy(store_url):
    s = LabelStore(store_url("g"), k=1, gold_rate=0.5, seed=1)
    s.accounts.add_labeler("ann", "pw-ann")
    s.add_records([record(i) for i in range(6)])
    s.add_records([record(100 + i) for i in range(4)], gold=True)
    seen_gold = 0
    while (a := s.next_assignment("ann")) is not None:
        gold = "question 1" in a.prompt[0]["content"] and int(a.prompt[0]["content"].split()[1]) >= 100
        seen_gold += gold
        # ann always picks the "good" response
        left_good = a.left[0]["content"].startswith("good")
        s.submit("ann", a.pair_id, "A" if left_good else "B", 3)
    stats = label_stats(s)
    assert seen_gold == 4 and stats["gold_pairs"] == 4 and stats["pairs"] == 6
    assert stats["per_labeler"]["ann"]["gold_accuracy"] == 1.0
    assert stats["per_labeler"]["ann"]["gold_labels"] == 4
    records, _ = aggregate(s)
    assert len(records) == 6                                     # gold pairs are not exported


def test_priority_hook_orders_the_queue(store):
    class Scorer:   # a reward model stand-in with the `score` interface: pair 2 is the most uncertain
        def score(self, prompts, responses, batch_size=16):
            return [0.0 if "2" in r[0]["content"] else 5.0 * (r[0]["content"].startswith("good"))
                    for r in responses]

    assert store.prioritize(uncertainty_priority(Scorer())) == 4
    assert store.next_assignment("ann").prompt[0]["content"] == "question 2"


def test_quality_figures_hand_computed(store):
    # Pairs 0-3 in insertion order; stored choices: ann A A B B, bob A B B A.
    pairs = [p.pair_id for p in store.pairs()]
    for who, choices in (("ann", "AABB"), ("bob", "ABBA")):
        for pid, ch in zip(pairs, choices):
            a = store.next_assignment(who)
            assert a.pair_id == pid
            shown = ch if a.shown_order == "AB" else {"A": "B", "B": "A"}[ch]
            store.submit(who, pid, shown, 3)
    stats = label_stats(store)
    assert stats["pairwise_agreement"] == 0.5
    assert stats["per_labeler"]["ann"]["agreement_with_majority"] == 0.5
    # Krippendorff nominal, 2 coders, 4 units, values A A B B / A B B A: D_o = 2/8 * 2 ... = 0.5, D_e = 4/7
    by_pair = {}
    for lab in store.labels():
        by_pair.setdefault(lab.pair_id, []).append(lab)
    assert krippendorff_alpha(by_pair) == pytest.approx(1 - 0.5 / (4 / 7))
    assert stats["krippendorff_alpha"] == pytest.approx(1 - 0.5 / (4 / 7), abs=1e-4)


def test_export_aggregates_majority_margin_and_ties(tmp_path, store_url):
    s = LabelStore(store_url("x"), k=3, seed=0)
    for name in ("ann", "bob", "cat"):
        s.accounts.add_labeler(name, "pw-" + name)
    s.add_records([record(i) for i in range(3)])
    pairs = [p.pair_id for p in s.pairs()]
    plan = {"ann": [("B", 4), ("tie", 1), ("A", 1)], "bob": [("B", 2), ("tie", 1), ("B", 1)],
            "cat": [("A", 3), ("A", 3), ("both_bad", 1)]}
    for who, choices in plan.items():
        for pid, (ch, st) in zip(pairs, choices):
            a = s.next_assignment(who)
            shown = ch if a.shown_order == "AB" or ch in ("tie", "both_bad") else {"A": "B", "B": "A"}[ch]
            s.submit(who, pid, shown, st)
    summary = export_dataset(s, tmp_path / "out", min_labels=2)
    assert (summary.preferences, summary.ties) == (1, 1)
    assert summary.dropped["no majority"] == 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "preferences.jsonl").open()]
    pref, tie = rows
    assert pref["chosen"][0]["content"] == "bad 0" and pref["rejected"][0]["content"] == "good 0"
    assert pref["margin"] == pytest.approx((1.0 + 1 / 3) / 2, abs=1e-4)   # strengths 4 and 2
    assert tie["tie"] is True and tie["margin"] == 0.0
    assert pref["labeler"] == "ann,bob,cat"
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    assert ds["train"].num_rows == 1 and ds["ties"].num_rows == 1
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Krippendorff" in card and "| preferences" in card
    assert len((tmp_path / "out" / "labels.jsonl").read_text().splitlines()) == 9
    strict, _ = aggregate(s, min_agreement=0.7)
    assert strict == []                               # 2 of 3 agree at best


def test_candidates_import_keeps_provenance_and_is_idempotent(store):
    sets = [CandidateSet("p-1", [{"role": "user", "content": "Review a cafe."}], [
        Candidate("Lovely place.", model="m", sampling={"temperature": 1.0}, logprobs=[-0.1, -0.2]),
        Candidate("Awful place.", model="m", adapter="a1"),
        Candidate("Fine.", model="m"),
        Candidate("Fine.", model="m")])]                     # a duplicate response adds nothing
    assert store.add_candidates(sets, batch="round-1") == (3, 0)
    assert store.add_candidates(sets, batch="round-1") == (0, 3)
    pairs = store.pairs(batch="round-1")
    assert pairs[0].provenance_a == {"model": "m", "sampling": {"temperature": 1.0}, "logprobs": [-0.1, -0.2]}
    assert pairs[0].provenance_b["adapter"] == "a1"


def test_oversized_text_is_refused_by_name_and_nothing_is_stored(store_url):
    s = LabelStore(store_url("o"), max_text_chars=100)
    big = record(1, chosen="x" * 200)
    big.pair_id = "row-7"
    with pytest.raises(LabelingError, match=r"row-7: `response_a` has 202 characters.*limit of 100"):
        s.add_records([record(0), big])
    assert s.pairs() == []


def test_concurrent_claims_never_exceed_k(store_url):
    s = LabelStore(store_url("c"), k=3, seed=0)
    names = [f"l{i:02d}" for i in range(12)]
    for n in names:
        s.accounts.add_labeler(n, "pw-" + n)
    s.add_records([record(i) for i in range(10)])
    errors = []

    def work(name):
        store = LabelStore(store_url("c"))   # its own connections, like another process or replica
        try:
            label_all(store, name, choice="B", strength=2)
        except Exception as e:   # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(s.label_counts().values()) == [3] * 10
    labels = s.labels()
    assert len({(lab.labeler, lab.pair_id) for lab in labels}) == len(labels) == 30


def test_handlers_and_escaping(store):
    config = AppConfig()
    view = show_next(store, config, "ann")
    assert view.pair_id and "Labeled today: **0**" in view.status
    with pytest.raises(LabelingError, match="how much better"):
        record_preference(store, config, "ann", view.pair_id, "A", None)
    after = record_preference(store, config, "ann", view.pair_id, "tie", None)   # ties need no strength
    assert "Saved label" in after.status and after.pair_id != view.pair_id
    assert store.labels()[0].choice == "tie"
    text = "<script>alert(1)</script> & <img src=x onerror=alert(2)> `<b>code</b>`\n```\n<i>x</i>\n```"
    escaped = escape_markdown(text)
    assert "<script>" not in escaped.split("`")[0] and "&lt;script&gt;" in escaped
    assert "&lt;img src=x onerror=alert(2)&gt;" in escaped
    assert "`<b>code</b>`" in escaped and "```\n<i>x</i>\n```" in escaped   # code is escaped by the renderer


def test_export_trains_unchanged_in_trl(tmp_path, tiny_llama, store_url):
    """The exported dataset goes straight into TRL's DPOTrainer and RewardTrainer (no conversion)."""
    import trl
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    s = LabelStore(store_url("t"), k=1, seed=0)
    s.accounts.add_labeler("ann", "pw-ann")
    s.add_records([record(i) for i in range(6)])
    label_all(s, "ann", choice="A", strength=4)
    export_dataset(s, tmp_path / "out")
    train = load_from_disk(str(tmp_path / "out" / "dataset"))["train"]
    assert train.num_rows == 6 and {"prompt", "chosen", "rejected", "margin"} <= set(train.column_names)
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    common = dict(max_steps=1, per_device_train_batch_size=2, report_to=[], use_cpu=True, bf16=False,
                  gradient_checkpointing=False, save_strategy="no")
    dpo = trl.DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_llama), processing_class=tok,
                         args=trl.DPOConfig(output_dir=str(tmp_path / "dpo"), **common), train_dataset=train)
    assert dpo.train().training_loss > 0
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    reward = trl.RewardTrainer(model=rm, processing_class=tok, train_dataset=train,
                               args=trl.RewardConfig(output_dir=str(tmp_path / "rm"), **common))
    assert reward.train().training_loss > 0


def test_a_lost_postgresql_server_refuses_with_one_message_and_recovers(caplog):
    """The database server dies under an open store: writes are refused with the storage message
    (nothing stored is lost), logged once; once the server is back the same store works, no restart."""
    import logging

    from labeling_app.errors import StorageError
    from tests.pg import PostgresServer, postgres_bin

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed here")
    with PostgresServer() as server:
        s = LabelStore(server.new_database("lost"), k=1, seed=0)
        s.accounts.add_labeler("ann", "pw-ann")
        s.add_records([record(i) for i in range(3)])
        first = s.next_assignment("ann")
        s.submit("ann", first.pair_id, "A", 3)
        server._run("pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop")
        with caplog.at_level(logging.WARNING, logger="labeling_app"):
            for _ in range(5):
                with pytest.raises(StorageError, match="database server cannot be reached.*nothing you"):
                    s.add_records([record(10)])
        assert len([r for r in caplog.records if "cannot write" in r.message]) == 1
        server._run("pg_ctl", "-D", str(server.data), "-l", str(server.root / "server.log"), "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.root}", "start")
        assert [lab.pair_id for lab in s.labels()] == [first.pair_id]       # the acknowledged label
        second = s.next_assignment("ann")
        assert s.submit("ann", second.pair_id, "B", 2).labeler == "ann"
