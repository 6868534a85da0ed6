"""The loop's side of the labeling app: the store, the app served for the whole run, and who labels at
it (simulated labelers through its API, or people at its URL).

The app starts at the first stage that needs labels and stays up until the run ends, so a labeler who
comes back between stages finds it at the same URL. Training batches are labelled until every pair has
its k labels; evaluation batches until each comparison's watch says it is over (`evaluation.py`).
"""

from __future__ import annotations

import socket
import time

from foundation.errors import AlignError, ConfigError

__all__ = ["LabelingDesk", "LabelingStopped", "open_store"]


class LabelingStopped(AlignError):
    """The simulated labelers ended with pairs of the round still unlabeled."""


def open_store(config, url: str):
    """The loop's store, promising `config.k`. A store made before the loop's first run (`align label
    add-user` promises k = 3 by default) takes the loop's k while it holds no label; one with labels keeps
    its own, and a different `k` is refused with the fix."""
    from labeling_app.store import LabelStore

    store = LabelStore(url, seed=config.seed)
    if store.k != config.k:
        if store.labels(include_retracted=True):
            raise ConfigError(f"{url} holds labels given at k = {store.k}; this loop asks for k = "
                              f"{config.k}. Run it with --k {store.k}, or change the store's k for every "
                              f"replica with `align label settings --store {url} --k {config.k}`.")
        store = LabelStore(url, k=config.k, seed=config.seed, change_settings=True)
    return store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelingDesk:
    """The app over the loop's store, and the labelers: `config.labelers` simulated ones (the judge at
    `judge_temperature`, taking turns: reproducible), or people (0)."""

    def __init__(self, config, store):
        self.config, self.store = config, store
        self._app, self.url = None, None

    def serve(self) -> str:
        """The app's URL, starting it the first time: it stays up until `close`."""
        if self.url is None:
            from labeling_app.app import build_app, launch_options
            from labeling_app.config import AppConfig

            cfg = self.config
            self._app = build_app(self.store, AppConfig())   # k lives in the store
            port = cfg.port or _free_port()
            self._app.launch(server_name=cfg.host, server_port=port, prevent_thread_lock=True, quiet=True,
                             **launch_options(self.store))
            self.url = f"http://{cfg.host}:{port}"
        return self.url

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app, self.url = None, None

    def label(self, r: int, batches) -> None:
        """Round r's training pairs (`batches`) labelled until each has k labels."""
        url = self.serve()
        if self.config.labelers > 0:
            self._simulate(r, batches, seed=self.config.seed + r)
            return
        total = self._remaining(batches)
        print(f"align loop: round {r}: label {total} comparisons at {url} "
              f"(accounts: `align label add-user NAME --store {self.store.url}`)", flush=True)
        self._wait(f"round {r} labels", total, lambda: total - self._remaining(batches))

    def judge(self, r: int, watches: dict, publish=lambda: None) -> None:
        """Round r's evaluation batches labelled until every watch says its comparison is over or its
        pairs are all labelled; `publish()` shows the comparisons as they fill (every 10 labels, or every
        poll for people)."""
        url = self.serve()
        if self.config.labelers > 0:
            def progress(n: int) -> None:
                for w in watches.values():
                    w.poll()
                if n % 10 == 0:
                    publish()

            self._simulate(r, [w.batch for w in watches.values()], seed=self.config.seed + 1000 + r,
                           progress=progress)
            for w in watches.values():
                w.poll()
            return
        most = self.config.eval_labels
        print(f"align loop: round {r}: compare the new policy's answers with the older ones at {url} "
              f"(at most {most} labels each; it stops once the labelers agree)", flush=True)

        def done() -> int:
            n = sum(len(w.outcomes) if w.waiting() else most for w in list(watches.values()))
            publish()
            return n

        self._wait(f"round {r} evaluation", most * len(watches), done)

    def _remaining(self, batches) -> int:
        return sum(self.store.remaining(batch=b) for b in batches)

    def _simulate(self, r: int, batches, seed: int, progress=None) -> None:
        from align.judges import load_judge
        from labeling_app.client import simulate

        cfg = self.config
        accounts = [(f"sim-{i + 1:02d}", f"simulated-{i + 1:02d}") for i in range(cfg.labelers)]
        known = {name for name, _ in self.store.accounts.labelers()}
        for name, password in accounts:
            if name not in known:
                self.store.accounts.add_labeler(name, password)
        labelers = load_judge(cfg.judge, temperature=cfg.judge_temperature)   # noisy, unlike the oracle
        result = simulate(self.url, accounts, labelers, seed=seed, in_turn=True, progress=progress)
        if self._remaining(batches):
            raise LabelingStopped(f"round {r}: the simulated labelers stopped with "
                                  f"{self._remaining(batches)} labels missing ({result.errors[:3]}); rerun "
                                  f"`align loop` with the same --output_dir to resume, or label the rest at "
                                  f"{self.url}.")

    @staticmethod
    def _wait(what: str, total: int, done) -> None:
        """A progress bar until `done()` (polled every 2 s) reaches `total`."""
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=what, unit="label") as bar:
            while (n := done()) < total:
                bar.update(n - bar.n)
                time.sleep(2)
            bar.update(bar.total - bar.n)
