"""The labeling desk: the app served over a store for a program that waits on labels (the loop), and who
labels at it: simulated labelers through the app's API (a judge, taking turns: reproducible), or people
at its URL.

The app starts the first time labels are wanted and stays up until `close`, so a labeler who comes back
between rounds finds it at the same URL. Training batches are labelled until every pair has its k labels;
evaluation batches until each comparison's watch says it is over.

>>> desk = LabelingDesk(store, simulated=4, judge=judge, seed=0)   # or simulated=0: people
>>> desk.label(["round-1/active"], what="round 1")                  # returns when every pair has k labels
>>> desk.close()
"""

from __future__ import annotations

import socket
import time
from typing import Callable, Iterable

from labeling_app.app import build_app, launch_options
from labeling_app.client import simulate
from labeling_app.config import AppConfig
from labeling_app.errors import LabelingError

__all__ = ["LabelingDesk", "LabelingStopped"]


class LabelingStopped(LabelingError):
    """The simulated labelers ended with pairs still unlabeled."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelingDesk:
    """The app over `store`, and its labelers: `simulated` accounts that answer with `judge(prompt, a, b)`
    through the app's API, or people (`simulated=0`)."""

    def __init__(self, store, *, host: str = "127.0.0.1", port: int = 0, simulated: int = 0,
                 judge: Callable | None = None, seed: int = 0):
        if simulated and judge is None:
            raise LabelingError("simulated labelers need a judge.")
        self.store, self.host, self.port = store, host, port
        self.simulated, self.judge, self.seed = simulated, judge, seed
        self._app, self.url = None, None

    def serve(self) -> str:
        """The app's URL, starting it the first time: it stays up until `close`."""
        if self.url is None:
            self._app = build_app(self.store, AppConfig())   # k lives in the store
            port = self.port or _free_port()
            self._app.launch(server_name=self.host, server_port=port, prevent_thread_lock=True, quiet=True,
                             **launch_options(self.store))
            self.url = f"http://{self.host}:{port}"
        return self.url

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app, self.url = None, None

    def label(self, batches: Iterable[str], *, what: str, seed: int = 0) -> None:
        """The pairs of `batches` labelled until each has k labels (`what` names them in messages).
        Simulated labelers work through whatever the queue serves until it is empty for them."""
        batches, url = list(batches), self.serve()
        if self.simulated:
            self._simulate(what, batches, seed=self.seed + seed)
            return
        # the app may be serving these pairs already: count the batches' whole need, not a moment's rest
        total = sum(self.store.wanted(batch=b) for b in batches)
        print(f"{what}: label {total} comparisons at {url} ({self._remaining(batches)} still to do; "
              f"accounts: `align label add-user NAME --store {self.store.url}`)", flush=True)
        self._wait(f"{what} labels", total, lambda: total - self._remaining(batches))

    def compare(self, watches: dict, *, what: str, most: int, seed: int = 0,
                publish: Callable[[], None] = lambda: None) -> None:
        """Evaluation batches labelled until every watch (`poll()`, `batch`, `waiting()`, `outcomes`) says
        its comparison is over or its pairs are all labelled; at most `most` labels each from people.
        `publish()` shows the comparisons as they fill (every 10 labels, or every poll for people)."""
        url = self.serve()
        if self.simulated:
            def progress(n: int) -> None:
                for w in watches.values():
                    w.poll()
                if n % 10 == 0:
                    publish()

            self._simulate(what, [w.batch for w in watches.values()], seed=self.seed + seed,
                           progress=progress)
            for w in watches.values():
                w.poll()
            return
        print(f"{what}: compare the new policy's answers with the older ones at {url} "
              f"(at most {most} labels each; it stops once the labelers agree)", flush=True)

        def done() -> int:
            n = sum(len(w.outcomes) if w.waiting() else most for w in list(watches.values()))
            publish()
            return n

        self._wait(f"{what} evaluation", most * len(watches), done)

    def _remaining(self, batches: list[str]) -> int:
        return sum(self.store.remaining(batch=b) for b in batches)

    def _simulate(self, what: str, batches: list[str], seed: int, progress=None) -> None:
        accounts = [(f"sim-{i + 1:02d}", f"simulated-{i + 1:02d}") for i in range(self.simulated)]
        known = {name for name, _ in self.store.accounts.labelers()}
        for name, password in accounts:
            if name not in known:
                self.store.accounts.add_labeler(name, password)
        result = simulate(self.url, accounts, self.judge, seed=seed, in_turn=True, progress=progress)
        if self._remaining(batches):
            raise LabelingStopped(f"{what}: the simulated labelers stopped with {self._remaining(batches)} "
                                  f"labels missing ({result.errors[:3]}); run again with the same output "
                                  f"folder to resume, or label the rest at {self.url}.")

    @staticmethod
    def _wait(what: str, total: int, done) -> None:
        """A progress bar until `done()` (polled every 2 s) reaches `total`."""
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=what, unit="label") as bar:
            while (n := done()) < total:
                bar.update(n - bar.n)
                time.sleep(2)
            bar.update(bar.total - bar.n)
