"""Label through a running app's API, as a tool or a simulated labeler would.

`LabelingClient` signs in like the browser does (the app's login form) and calls the named endpoints
`/next_pair` and `/submit_label` with a direct `POST /gradio_api/run/<name>`: one round trip per
call, no queue. `gradio_client.Client(url, auth=(user, password))` reaches the same endpoints.

`simulate()` runs N labelers concurrently on one task kind, and measures what they see: acknowledged
labels and submit latencies. Pairs are judged with `judge(prompt, response_a, response_b) -> (choice,
strength)`; rankings by the same judge in a round robin (each response's wins over the others, ties
half); ratings by a `rater(prompt, response) -> "good" | "bad"` (`foundation.judges.load_rater`).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from foundation.stats import dense_ranks
from labeling_app.errors import AuthError, LabelingError, NotAssignedError

__all__ = ["LabelingClient", "SimulationResult", "simulate", "simulated_accounts", "TransportError"]


class TransportError(LabelingError):
    """The request or its reply was lost on the way (connection, timeout): safe to retry."""


class LabelingClient:
    def __init__(self, url: str, user: str, password: str, *, timeout: float = 60.0):
        import httpx

        self.url, self.user = url.rstrip("/"), user
        # One Gradio session for all calls: without it the server builds a fresh session (a copy of
        # every component's config) per request, which costs more than the label itself.
        self.session_hash = secrets.token_hex(8)
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        try:
            response = self._http.post("/login", data={"username": user, "password": password})
        except httpx.HTTPError as e:
            raise LabelingError(f"cannot reach the labeling app at {url} ({e}); "
                                f"is `align label serve` running?") from e
        if response.status_code == 429:
            raise AuthError(f"login as {user!r} at {url} refused: too many failed logins from this address; "
                            f"wait a few minutes.")
        if response.status_code != 200:
            raise AuthError(f"login as {user!r} at {url} failed: unknown user, wrong password or a locked "
                            f"account (`align label add-user {user}` creates one; "
                            f"`align label unlock {user}` lifts a lockout).")

    def _call(self, name: str, *data):
        import httpx

        try:
            response = self._http.post(f"/gradio_api/run/{name}",
                                       json={"data": list(data), "session_hash": self.session_hash})
        except httpx.HTTPError as e:
            raise TransportError(f"{self.url}/{name}: {e}") from e
        body = (response.json() if response.headers.get("content-type", "").startswith("application/json")
                else {})
        if response.status_code != 200:
            message = body.get("error") or response.text[:200]
            cls = {409: NotAssignedError, 403: AuthError}.get(response.status_code, LabelingError)
            raise cls(f"{name} as {self.user!r}: {message}")
        return body["data"][0]

    def next_pair(self) -> dict | None:
        """`{"pair_id", "prompt", "response_a", "response_b"}` as shown to this labeler, or None."""
        return self._call("next_pair")

    def submit_label(self, pair_id: str, choice: str, strength: int, rationale: str = "",
                     retries: int = 2) -> dict:
        """Returns after the label is committed: `{"label_id", "pair_id", "stored": True}`. A lost reply
        is retried with the same request id, so the label is stored once and its id comes back."""
        return self._submit("submit_label", pair_id, choice, strength, rationale, retries=retries)

    def _submit(self, name: str, *data, retries: int = 2) -> dict:
        """A submit with a request id, retried with it after a lost reply: stored once, id returned."""
        request_id = secrets.token_hex(12)
        for attempt in range(retries + 1):
            try:
                return self._call(name, *data, request_id)
            except TransportError:
                if attempt == retries:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def next_rating(self) -> dict | None:
        """`{"task_id", "prompt", "response"}`, or None."""
        return self._call("next_rating")

    def submit_rating(self, task_id: str, rating: str, rationale: str = "") -> dict:
        """`{"answer_id", "task_id", "stored": True}` once the rating is committed."""
        return self._submit("submit_rating", task_id, rating, rationale)

    def next_ranking(self) -> dict | None:
        """`{"task_id", "prompt", "responses": [...]}` in the order shown, or None."""
        return self._call("next_ranking")

    def submit_ranking(self, task_id: str, ranks: list[int], rationale: str = "") -> dict:
        """`ranks`: one integer per response in the order shown, 1 = best, equal numbers a tie."""
        return self._submit("submit_ranking", task_id, ranks, rationale)

    def close(self) -> None:
        self._http.close()


@dataclass
class SimulationResult:
    acknowledged: list[tuple[str, str, int]] = field(default_factory=list)  # (labeler, pair_id, label_id)
    latencies: list[float] = field(default_factory=list)                     # seconds per submit_label
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))]

    def summary(self) -> dict:
        n = len(self.acknowledged)
        return {"labels": n, "seconds": round(self.seconds, 2),
                "labels_per_second": round(n / max(self.seconds, 1e-9), 1),
                "submit_p50_ms": round(1000 * self.percentile(0.5), 1),
                "submit_p99_ms": round(1000 * self.percentile(0.99), 1), "errors": len(self.errors)}


def simulated_accounts(n: int, prefix: str = "sim") -> list[str]:
    return [f"{prefix}-{i + 1:02d}" for i in range(n)]


def simulate(url: str, accounts: list[tuple[str, str]], judge: Callable, *, duration: float | None = None,
             max_labels: int | None = None, seed: int = 0, think_time: float = 0.0,
             progress: Callable[[int], None] | None = None, kind: str = "pairs",
             rater: Callable | None = None, in_turn: bool = False) -> SimulationResult:
    """Each account labels tasks of `kind` (pairs, rating, ranking) in its own thread until its queue is
    empty, `duration` seconds pass, or `max_labels` labels are in (all labelers together). A noisy judge
    (e.g. `load_judge("vader", temperature=0.1)`) brings its own noise; `seed` drives the think times.
    Ratings need a `rater`. `in_turn`: one thread, the accounts taking one item each in turn, the
    judge's noise drawn from `random` seeded with `seed`: who labels what, and every label, follow from
    the seed (a reproducible run; the threads' order depends on timing)."""
    if kind not in ("pairs", "rating", "ranking"):
        raise LabelingError(f"task kind must be pairs, rating or ranking, got {kind!r}.")
    if kind == "rating" and rater is None:
        raise LabelingError("simulated ratings need a rater (foundation.judges.load_rater).")
    if in_turn:
        if duration is not None or think_time:
            raise LabelingError("simulated labelers in turn take no duration or think_time: they label "
                                "until the queue is empty (or max_labels).")
        return _simulate_in_turn(url, accounts, judge, kind=kind, rater=rater, seed=seed,
                                 max_labels=max_labels, progress=progress)
    result = SimulationResult()
    lock = threading.Lock()
    stop = threading.Event()
    clock = {"start": 0.0}
    # The clock starts once everyone has signed in (the barrier's action runs before anyone goes on).
    ready = threading.Barrier(len(accounts) + 1, action=lambda: clock.update(start=time.perf_counter()))

    def work(index: int, user: str, password: str) -> None:
        rng = random.Random(seed * 1000 + index)
        try:
            client = LabelingClient(url, user, password)
        except LabelingError as e:
            with lock:
                result.errors.append(str(e))
            ready.wait()
            return
        ready.wait()
        try:
            while not stop.is_set():
                if duration is not None and time.perf_counter() - clock["start"] > duration:
                    break
                step = _next_step(client, kind, judge, rater)
                if step is None:
                    break
                item_id, submit = step
                if think_time:
                    time.sleep(rng.expovariate(1 / think_time))
                t0 = time.perf_counter()
                try:
                    ack = submit()
                except NotAssignedError as e:    # e.g. the claim expired meanwhile: go on
                    with lock:
                        result.errors.append(str(e))
                    continue
                elapsed = time.perf_counter() - t0
                with lock:
                    result.acknowledged.append((user, item_id, ack.get("label_id", ack.get("answer_id"))))
                    result.latencies.append(elapsed)
                    n = len(result.acknowledged)
                if progress:
                    progress(n)
                if max_labels is not None and n >= max_labels:
                    stop.set()
        except LabelingError as e:
            with lock:
                result.errors.append(str(e))
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i, u, p), daemon=True)
               for i, (u, p) in enumerate(accounts)]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - clock["start"]
    return result


def _simulate_in_turn(url: str, accounts: list[tuple[str, str]], judge: Callable, *, kind: str,
                      rater: Callable | None, seed: int, max_labels: int | None,
                      progress: Callable[[int], None] | None) -> SimulationResult:
    """`simulate` with the accounts taking turns in this thread (see `in_turn`)."""
    result = SimulationResult()
    random.seed(seed)
    clients = []
    for user, password in accounts:
        try:
            clients.append((user, LabelingClient(url, user, password)))
        except LabelingError as e:
            result.errors.append(str(e))
    start = time.perf_counter()
    try:
        waiting = list(clients)
        while waiting and (max_labels is None or len(result.acknowledged) < max_labels):
            for user, client in list(waiting):
                if max_labels is not None and len(result.acknowledged) >= max_labels:
                    break
                try:
                    step = _next_step(client, kind, judge, rater)
                    if step is None:                    # nothing left that this account may label
                        waiting.remove((user, client))
                        continue
                    item_id, submit = step
                    t0 = time.perf_counter()
                    ack = submit()
                except LabelingError as e:
                    result.errors.append(str(e))
                    waiting.remove((user, client))
                    continue
                result.latencies.append(time.perf_counter() - t0)
                result.acknowledged.append((user, item_id, ack.get("label_id", ack.get("answer_id"))))
                if progress:
                    progress(len(result.acknowledged))
    finally:
        for _, client in clients:
            client.close()
    result.seconds = time.perf_counter() - start
    return result


def _next_step(client: LabelingClient, kind: str, judge: Callable, rater: Callable | None):
    """(task or pair id, the submit to call) for the labeler's next item of `kind`, or None."""
    if kind == "pairs":
        pair = client.next_pair()
        if pair is None:
            return None
        choice, strength = _judge(judge, pair)
        return pair["pair_id"], lambda: client.submit_label(pair["pair_id"], choice, strength)
    if kind == "rating":
        task = client.next_rating()
        if task is None:
            return None
        rating = rater(task["prompt"], task["response"])
        return task["task_id"], lambda: client.submit_rating(task["task_id"], rating)
    if kind == "ranking":
        task = client.next_ranking()
        if task is None:
            return None
        ranks = round_robin_ranks(judge, task["prompt"], task["responses"])
        return task["task_id"], lambda: client.submit_ranking(task["task_id"], ranks)
    raise AssertionError(kind)                          # checked by `simulate`


def round_robin_ranks(judge: Callable, prompt, responses: list) -> list[int]:
    """Ranks (1 = best) from a pairwise judge: each response's wins over every other (ties and
    both-bad count half); equal wins share a rank."""
    from itertools import combinations

    wins = [0.0] * len(responses)
    for i, j in combinations(range(len(responses)), 2):
        choice, _ = _judge(judge, {"prompt": prompt, "response_a": responses[i], "response_b": responses[j]})
        if choice == "A":
            wins[i] += 1
        elif choice == "B":
            wins[j] += 1
        else:
            wins[i] += 0.5
            wins[j] += 0.5
    return dense_ranks(wins)


def _judge(judge: Callable, pair: dict) -> tuple[str, int]:
    out = judge(pair["prompt"], pair["response_a"], pair["response_b"])
    choice, strength = out if isinstance(out, (tuple, list)) else (out, 3)
    if choice not in ("A", "B", "tie", "both_bad"):
        raise LabelingError(f"the judge returned choice {choice!r}; "
                            f"it must return one of A, B, tie, both_bad.")
    return choice, int(strength)
