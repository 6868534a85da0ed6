"""The loop's side of the labeling app: its store (the k it promises) and its labeling desk
(`labeling_app.desk`: the app served for the whole run, and who labels at it, simulated labelers with the
loop's judge or people)."""

from __future__ import annotations

from align.judges import load_judge
from foundation.errors import ConfigError
from labeling_app.desk import LabelingDesk
from labeling_app.store import LabelStore

__all__ = ["labeling_desk", "open_store"]


def open_store(config, url: str):
    """The loop's store, promising `config.k`. A store made before the loop's first run (`align label
    add-user` promises k = 3 by default) takes the loop's k while it holds no label; one with labels keeps
    its own, and a different `k` is refused with the fix."""
    store = LabelStore(url, seed=config.seed)
    if store.k != config.k:
        if store.labels(include_retracted=True):
            raise ConfigError(f"{url} holds labels given at k = {store.k}; this loop asks for k = "
                              f"{config.k}. Run it with --k {store.k}, or change the store's k for every "
                              f"replica with `align label settings --store {url} --k {config.k}`.")
        store = LabelStore(url, k=config.k, seed=config.seed, change_settings=True)
    return store


def labeling_desk(config, store) -> LabelingDesk:
    """The app over the loop's store, and the labelers: `config.labelers` simulated ones (the judge at
    `judge_temperature`, taking turns: reproducible), or people (0)."""
    judge = load_judge(config.judge, temperature=config.judge_temperature) if config.labelers else None
    return LabelingDesk(store, host=config.host, port=config.port, simulated=config.labelers, judge=judge,
                        seed=config.seed)
