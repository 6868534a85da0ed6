"""50 simulated labelers against a real `align label serve` on loopback.

    python -m benchmarks.label_throughput --labelers 50 --seconds 60

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


def make_store(folder: Path, accounts, pairs: int, k: int) -> str:
    url = f"sqlite:///{folder.resolve()}/labels.db"
    store = LabelStore(url, k=k)
    base = read_preferences(HH).records
    records = [PreferenceRecord(prompt=[{"role": "user", "content": f"{r.prompt[-1]['content']} (#{i})"}],
                                chosen=r.chosen, rejected=r.rejected, source="hh-rlhf")
               for i, r in zip(range(pairs), (base[j % len(base)] for j in range(pairs)))]
    store.add_records(records)
    for name, password in accounts:
        store.add_labeler(name, password)
    return url


def serve(url: str, port: int, folder: Path, config: str | None = None) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "align.cli", "label", "serve", "--store", url,
                             "--port", str(port), *(["--config", config] if config else [])],
                            stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT)
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


def run(side: str, labelers: int, seconds: float, pairs: int, k: int, port: int) -> dict:
    accounts = [(f"sim-{i + 1:02d}", f"password-{i + 1:02d}") for i in range(labelers)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = make_store(folder, accounts, pairs, k)
        proc = serve(url, port, folder)
        try:
            sim = simulate if side == "ours" else gradio_client_simulate
            result = sim(f"http://127.0.0.1:{port}", accounts, vader_judge, duration=seconds)
        finally:
            proc.terminate()
            proc.wait()
        store = LabelStore(url)
        stored = {lab.id for lab in store.labels()}
        acked = {a[2] for a in result.acknowledged}
        return {**result.summary(), "side": side, "lost": len(acked - stored),
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
