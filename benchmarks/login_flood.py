"""Does a login flood slow the labelers down? `/next_pair` latency of a signed-in labeler against a
real `align label serve`, without and then during a flood of wrong-password logins.

    python -m benchmarks.login_flood [--threads 8] [--calls 300]

The flood's limits are raised for the run (`login_failures`, `client_login_failures`) so that every
flood request really runs the scrypt check (in production the per-client limit answers 429 after 20).
Reports p50/p99 of `/next_pair` in both phases, the ratio, and the flood's rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from labeling_app import LabelStore
from labeling_app.client import LabelingClient


def _latencies(client: LabelingClient, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        client.next_pair()
        out.append(time.perf_counter() - start)
    return out


def _flood(url: str, stop: threading.Event, count: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            http.post("/login", data={"username": "ann", "password": "a wrong guess"})
            count.append(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    from benchmarks.label_throughput import serve
    from tests.test_label_store import record

    folder = Path(tempfile.mkdtemp(prefix="login-flood-"))
    url = f"sqlite:///{folder}/labels.db"
    store = LabelStore(url, k=1)
    store.accounts.add_labeler("ann", "ann-password")
    store.accounts.add_labeler("bob", "bob-password")
    store.add_records([record(i) for i in range(10)])
    (folder / "app.yaml").write_text("login_failures: 1000000\nclient_login_failures: 1000000\n")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = serve(url, port, folder, config=str(folder / "app.yaml"))
    try:
        base = f"http://127.0.0.1:{port}"
        client = LabelingClient(base, "bob", "bob-password")
        _latencies(client, 20)                                           # warm up
        quiet = _latencies(client, args.calls)
        stop, count = threading.Event(), []
        flooders = [threading.Thread(target=_flood, args=(base, stop, count)) for _ in range(args.threads)]
        for t in flooders:
            t.start()
        time.sleep(1.0)
        start, before = time.perf_counter(), len(count)
        flooded = _latencies(client, args.calls)
        rate = (len(count) - before) / (time.perf_counter() - start)
        stop.set()
        for t in flooders:
            t.join()
    finally:
        proc.terminate()
    q50, f50 = statistics.median(quiet) * 1000, statistics.median(flooded) * 1000
    q99 = sorted(quiet)[int(0.99 * len(quiet))] * 1000
    f99 = sorted(flooded)[int(0.99 * len(flooded))] * 1000
    print(f"python -m benchmarks.login_flood {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"| phase | /next_pair p50 | p99 |\n|---|---|---|\n| no flood | {q50:.1f} ms | {q99:.1f} ms |\n"
          f"| {args.threads}-thread login flood ({rate:.0f} wrong logins/s) | {f50:.1f} ms | {f99:.1f} ms |")
    print(f"ratio p50 flood / no flood {f50 / q50:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
