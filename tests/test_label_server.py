"""The labeling app as a real server process: the CLI, the API through gradio_client, 20 concurrent
simulated labelers, and a kill -9 in the middle of their submits."""

import json
import subprocess
import sys
import threading
import time

import pytest

from foundation.judges import vader_judge
from labeling_app import LabelStore, simulate
from labeling_app.client import LabelingClient
from labeling_app.errors import AuthError


def align(*args, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "align.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_cli_and_api(label_server, tmp_path, hh_file):
    server = label_server(k=2)
    store = server.store_url
    assert align("label", "add-user", "ann", "--store", store, stdin="pw-ann\n").returncode == 0
    assert align("label", "add-user", "boss", "--role", "admin", "--store", store,
                 stdin="pw-boss\n").returncode == 0
    dup = align("label", "add-user", "ann", "--store", store, stdin="pw-other\n")
    assert dup.returncode == 1 and "exists already" in dup.stderr
    out = align("label", "import", str(hh_file), "--format", "hh", "--store", store)
    assert out.returncode == 0 and "imported 1200 pairs" in out.stdout, out.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: a", '
                   '"rejected": "\\n\\nHuman: hi\\n\\nAssistant: b"}\n'
                   '{"chosen": 3}\n')
    out = align("label", "import", str(bad), "--store", store)
    assert out.returncode == 1 and "bad.jsonl, line 2" in out.stderr
    server.start()

    from gradio_client import Client

    client = Client(server.url, auth=("ann", "pw-ann"), verbose=False)
    pair = client.predict(api_name="/next_pair")
    assert set(pair) == {"pair_id", "prompt", "response_a", "response_b"}
    assert pair["prompt"][0]["role"] == "user" and isinstance(pair["response_a"], str)
    ack = client.predict(pair["pair_id"], "B", 4, "the other is rude", api_name="/submit_label")
    assert ack["stored"] is True
    label = LabelStore(store).labels()[0]
    assert label.id == ack["label_id"] and label.labeler == "ann" and label.shown_choice == "B"
    assert label.rationale == "the other is rude" and label.strength == 4
    with pytest.raises(Exception, match="not assigned to 'ann'"):
        client.predict("0000000000000000", "A", 3, "", api_name="/submit_label")
    # A labeler cannot reach admin functions: the admin endpoints refuse them.
    with pytest.raises(Exception, match="needs an admin account"):
        client.predict(api_name="/on_refresh")
    with pytest.raises(Exception, match="needs an admin account"):
        client.predict(api_name="/on_export")
    admin = Client(server.url, auth=("boss", "pw-boss"), verbose=False)
    summary, per_labeler, _, lockouts, over_time = admin.predict(api_name="/on_refresh")
    assert "**1** labels" in summary and per_labeler["data"][0][0] == "ann"
    with pytest.raises(AuthError):
        LabelingClient(server.url, "ann", "wrong")
    with pytest.raises(Exception):
        Client(server.url, auth=("nobody", "x"), verbose=False)

    stats = json.loads(align("label", "stats", "--json", "--store", store).stdout)
    assert stats["labels"] == 1 and stats["pairs"] == 1200 and stats["labelers"] == 1
    assert "krippendorff_alpha" in stats
    out = align("label", "export", "--out", str(tmp_path / "export"), "--store", store)
    assert out.returncode == 0 and "exported 1 preferences" in out.stdout


def _judge_fast(prompt, a, b):
    return ("A", 3) if len(a) >= len(b) else ("B", 2)


def started(label_server, pairs: int, labelers: int, store_url: str | None = None):
    """A running server over a k = 3 store with `pairs` pairs and `labelers` accounts."""
    from tests.test_label_store import record

    server = label_server(k=3, store_url=store_url)
    store = LabelStore(server.store_url, k=3)
    store.add_records([record(i) for i in range(pairs)])
    accounts = [(f"sim-{i:02d}", f"pw-sim-{i:02d}") for i in range(labelers)]
    for name, pw in accounts:
        store.accounts.add_labeler(name, pw)
    server.start()
    return server, store, accounts


def test_twenty_labelers_concurrently(label_server, store_url):
    server, store, accounts = started(label_server, pairs=40, labelers=20, store_url=store_url())
    result = simulate(server.url, accounts, _judge_fast)
    assert not result.errors
    labels = store.labels()
    assert len(result.acknowledged) == len(labels) == 120          # every pair got exactly k
    assert {lab.id for lab in labels} == {ack[2] for ack in result.acknowledged}
    assert max(store.label_counts().values()) == 3
    assert len({(lab.labeler, lab.pair_id) for lab in labels}) == 120   # no labeler twice on a pair


def test_labelers_in_turn_give_the_same_labels_for_the_same_seed(tmp_path):
    """`in_turn` over an app whose store shows pairs in a seeded order (as the loop serves it): who
    labels what, and every noisy label, follow from the seed, so the loop's runs repeat."""
    import socket
    from functools import partial

    from labeling_app.app import build_app, launch_options
    from labeling_app.config import AppConfig
    from tests.test_label_store import record

    noisy = partial(vader_judge, temperature=0.5)
    runs = []
    for i, seed in enumerate((3, 3, 4)):
        store = LabelStore(f"sqlite:///{tmp_path / f'run-{i}.db'}", k=3, seed=0)
        store.add_records([record(j) for j in range(12)])
        accounts = [(f"sim-{j:02d}", f"pw-sim-{j:02d}") for j in range(4)]
        for name, pw in accounts:
            store.accounts.add_labeler(name, pw)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        app = build_app(store, AppConfig())
        app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                   **launch_options(store))
        try:
            result = simulate(f"http://127.0.0.1:{port}", accounts, noisy, seed=seed, in_turn=True)
        finally:
            app.close()
        assert not result.errors and len(result.acknowledged) == 36 == len(store.labels())
        runs.append(sorted((lab.pair_id, lab.labeler, lab.choice) for lab in store.labels()))
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_kill_9_loses_no_acknowledged_label(label_server, store_url):
    server, store, accounts = started(label_server, pairs=400, labelers=10, store_url=store_url())
    box = {}
    runner = threading.Thread(target=lambda: box.update(result=simulate(server.url, accounts, vader_judge)))
    runner.start()
    deadline = time.time() + 60
    while len(store.labels()) < 150 and time.time() < deadline:
        time.sleep(0.05)
    server.kill()                                                    # mid-submit, no warning
    runner.join(60)
    result = box["result"]
    assert len(result.acknowledged) >= 150 and result.errors         # the clients saw the server die
    server.start()                                                   # restart on the same store
    after = LabelStore(server.store_url)
    assert after.integrity_check() == "ok"
    stored = {lab.id for lab in after.labels()}
    assert {ack[2] for ack in result.acknowledged} <= stored
    client = LabelingClient(server.url, *accounts[0])                # and labeling goes on
    assert client.next_pair() is not None


def test_two_replicas_on_one_postgresql_database(label_server, postgres_server):
    """Two `align label serve` processes on one PostgreSQL database, half the labelers on each; one
    replica is killed with SIGKILL mid-run and its labelers go on through the other. Every acknowledged
    label is stored once; no pair gets more than k; no labeler labels a pair twice."""
    from tests.test_label_store import record

    url = postgres_server.new_database("two_replicas")
    one = label_server(k=3, store_url=url, name="one")
    two = label_server(k=3, store_url=url, name="two")
    store = LabelStore(url, k=3)
    store.add_records([record(i) for i in range(150)])
    accounts = [(f"sim-{i:02d}", f"pw-sim-{i:02d}") for i in range(10)]
    for name, pw in accounts:
        store.accounts.add_labeler(name, pw)
    one.start()
    two.start()
    box = {}
    runners = [threading.Thread(target=lambda: box.update(one=simulate(one.url, accounts[:5], vader_judge))),
               threading.Thread(target=lambda: box.update(two=simulate(two.url, accounts[5:], vader_judge)))]
    for t in runners:
        t.start()
    deadline = time.time() + 60
    while len(store.labels()) < 100 and time.time() < deadline:
        time.sleep(0.05)
    one.kill()
    runners[0].join(60)
    after_kill = simulate(two.url, accounts[:5], vader_judge)        # replica one's labelers move over
    runners[1].join(120)
    acknowledged = [a for r in (box["one"], box["two"], after_kill) for a in r.acknowledged]
    labels = store.labels()
    assert box["one"].errors and not box["two"].errors and not after_kill.errors
    assert {a[2] for a in acknowledged} <= {lab.id for lab in labels}
    assert len(acknowledged) == len({a[2] for a in acknowledged})       # no label acknowledged twice
    assert max(store.label_counts().values()) <= 3
    assert len({(lab.labeler, lab.pair_id) for lab in labels}) == len(labels)
    assert len(labels) >= 300
