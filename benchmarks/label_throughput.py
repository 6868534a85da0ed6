"""50 simulated labelers against a real `align label serve` on loopback.

    python -m benchmarks.label_throughput --labelers 50 --seconds 60
    python -m benchmarks.label_throughput --store postgresql://user:pw@host:5432/empty_db --replicas 2
    python -m benchmarks.label_throughput --store postgresql-local --replicas 2 --skip-baseline

`--store`: a PostgreSQL database (empty: the benchmark fills it), or `postgresql-local` (a throwaway
local server, tests/pg.py); `--replicas N` runs N servers on that one store, the labelers spread over
them; with a PostgreSQL store, the same labelers against one server on a fresh SQLite file run first,
in the same run, as the reference.

Ours: `labeling_app.LabelingClient` (one login, one Gradio session, direct POST to the named
endpoints). Baseline: the same labelers through `gradio_client.Client(url, auth=...)` (the queue +
server-sent events path every Gradio tool uses), on a fresh store and server, in the same run.
Reports labels/s, p50/p99 of `/submit_label`, lost labels (acknowledged but not stored) and pairs
over k, and the ratio ours/baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from foundation.judges import vader_judge
from foundation.readers import read_preferences
from foundation.records import PreferenceRecord
from labeling_app import LabelStore, simulate
from labeling_app.client import SimulationResult

HH = (Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless"
      / "harmless-base-test-part1.jsonl.gz")


def make_store(folder: Path, accounts, pairs: int, k: int, url: str | None = None) -> str:
    url = url or f"sqlite:///{folder.resolve()}/labels.db"
    store = LabelStore(url, k=k, change_settings=True)
    if store.labels(include_retracted=True) or store.pairs():
        raise SystemExit(f"{url}: the store is not empty; give the benchmark an empty database.")
    base = read_preferences(HH).records
    records = [PreferenceRecord(prompt=[{"role": "user", "content": f"{r.prompt[-1]['content']} (#{i})"}],
                                chosen=r.chosen, rejected=r.rejected, source="hh-rlhf")
               for i, r in zip(range(pairs), (base[j % len(base)] for j in range(pairs)))]
    store.add_records(records)
    for name, password in accounts:
        store.accounts.add_labeler(name, password)
    return url


def serve(url: str, port: int, folder: Path, config: str | None = None) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "align.cli", "label", "serve", "--store", url,
                             "--port", str(port), *(["--config", config] if config else [])],
                            stdout=open(folder / f"server-{port}.log", "w"), stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.3)
    return proc


def gradio_client_simulate(url, accounts, judge, duration) -> SimulationResult:
    """The baseline: gradio_client through Gradio's queue, same labelers, same judge."""
    from gradio_client import Client

    result = SimulationResult()
    lock = threading.Lock()
    clients = [Client(url, auth=acc, verbose=False) for acc in accounts]
    start = time.perf_counter()

    def work(client):
        while time.perf_counter() - start < duration:
            pair = client.predict(api_name="/next_pair")
            if pair is None:
                return
            choice, strength = judge(pair["prompt"], pair["response_a"], pair["response_b"])
            t0 = time.perf_counter()
            ack = client.predict(pair["pair_id"], choice, strength, "", api_name="/submit_label")
            with lock:
                result.latencies.append(time.perf_counter() - t0)
                result.acknowledged.append(("", ack["pair_id"], ack["label_id"]))

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - start
    return result


def spread(sim, urls: list[str], accounts, judge, duration) -> SimulationResult:
    """The labelers dealt round-robin over the replicas, all at once; one result."""
    parts: list[SimulationResult] = [SimulationResult() for _ in urls]

    def work(i):
        parts[i] = sim(urls[i], accounts[i::len(urls)], judge, duration=duration)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return SimulationResult(acknowledged=[a for p in parts for a in p.acknowledged],
                            latencies=[x for p in parts for x in p.latencies],
                            errors=[e for p in parts for e in p.errors],
                            seconds=max(p.seconds for p in parts))


def run(side: str, labelers: int, seconds: float, pairs: int, k: int, port: int, store: str | None = None,
        replicas: int = 1) -> dict:
    accounts = [(f"sim-{i + 1:02d}", f"password-{i + 1:02d}") for i in range(labelers)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = make_store(folder, accounts, pairs, k, store)
        procs = [serve(url, port + i, folder) for i in range(replicas)]
        try:
            sim = simulate if side == "ours" else gradio_client_simulate
            result = spread(sim, [f"http://127.0.0.1:{port + i}" for i in range(replicas)], accounts,
                            vader_judge, seconds)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
        store = LabelStore(url)
        stored = {lab.id for lab in store.labels()}
        acked = {a[2] for a in result.acknowledged}
        backend = url.split("://")[0]
        return {**result.summary(), "side": side, "store": backend, "replicas": replicas,
                "lost": len(acked - stored),
                "over_k": sum(n > k for n in store.label_counts().values()),
                "integrity": store.integrity_check()}


def store_only(pairs: int, labels: int, k: int, synchronous: str) -> dict:
    """The store without the server: claim + submit per label, one thread, on a fresh file."""
    with tempfile.TemporaryDirectory() as tmp:
        accounts = [(f"l{i:02d}", "password") for i in range(k)]
        url = make_store(Path(tmp), accounts, pairs, k) + f"?synchronous={synchronous}"
        store = LabelStore(url)
        start = time.perf_counter()
        for i in range(labels):
            who = accounts[i % k][0]
            a = store.next_assignment(who)
            store.submit(who, a.pair_id, "A", 2)
        return {"side": f"store only, synchronous={synchronous}",
                "ms_per_label": round(1000 * (time.perf_counter() - start) / labels, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pairs", type=int, default=12000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--store-only", action="store_true", help="Time LabelStore claim + submit alone.")
    parser.add_argument("--store", help="An empty PostgreSQL database URL, or postgresql-local.")
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    if args.store:
        return run_postgresql(args)
    if args.store_only:
        for sync in ("full", "normal"):
            print(json.dumps(store_only(args.pairs, 3000, args.k, sync)))
        return
    rows = [run("ours", args.labelers, args.seconds, args.pairs, args.k, args.port)]
    if not args.skip_baseline:
        rows.append(run("gradio_client", args.labelers, args.seconds, args.pairs, args.k, args.port + 1))
        rows.append({"ratio_labels_per_second": round(rows[0]["labels_per_second"]
                                                      / rows[1]["labels_per_second"], 2)})
    for row in rows:
        print(json.dumps(row))


def run_postgresql(args) -> None:
    """Ours on one server over a fresh SQLite file (the reference), then on `--replicas` servers over
    the PostgreSQL store, same labelers and judge, in this run."""
    server = None
    store = args.store
    if store == "postgresql-local":
        from tests.pg import PostgresServer

        server = PostgresServer().start()
        store = server.new_database("throughput")
    try:
        rows = [run("ours", args.labelers, args.seconds, args.pairs, args.k, args.port),
                run("ours", args.labelers, args.seconds, args.pairs, args.k, args.port + 10, store,
                    args.replicas)]
    finally:
        if server is not None:
            server.stop()
    rows.append({"ratio_labels_per_second_postgresql_over_sqlite":
                 round(rows[1]["labels_per_second"] / rows[0]["labels_per_second"], 2)})
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
