"""Whether a set of labels can be learnt: reward models fit on part of the labels predict the rest.

The labels are split into folds by prompt (no prompt on both sides of a split); a reward model fit on all
folds but one is scored on the one it did not see, and the accuracies pool into one figure with its
interval. Labels from labelers whose preference is weak or noisy (people's often is) leave a reward model
near chance on labels it has not seen even when it fits its own: then the model's own pairs and an
extrapolation of the policy along the labels' direction amplify noise, which the loop's learnability
check (`learnability_check`, off by default: at 120 labels it has little power) guards against. Ties are
trained on and left out of the accuracy.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Callable

from foundation.records import PreferenceRecord, write_jsonl
from foundation.stats import wilson_interval

__all__ = ["cross_fit_accuracy", "folds_by_prompt", "pooled_accuracy", "above_chance", "Z_ONE_SIDED_95"]

# The normal quantile of a one-sided 5% test: a Wilson lower bound at this z above ½ rejects "chance".
Z_ONE_SIDED_95 = 1.644854


def cross_fit_accuracy(records: list[PreferenceRecord], config_for: Callable, folder: str | Path, *,
                       seed: int = 0, processes=None) -> dict:
    """Two reward models, each fit on the labels of half the prompts (`config_for(data, output_dir)` gives
    its `RewardConfig`), scored on the other half: the pooled accuracy, its 95% interval and whether it
    is above chance. Under several processes (`processes`: the loop's) every one trains and rank 0 alone
    holds the records, writes the halves, scores, and removes the models afterwards."""
    from reward.ensemble import load_scorer
    from reward.evaluate import evaluate_records
    from reward.trainer import train_reward

    main = processes is None or processes.is_main
    barrier = processes.barrier if processes is not None else (lambda: None)
    folder = Path(folder)
    folds = folds_by_prompt(records, k=2, seed=seed)
    if main:
        for i in range(2):
            write_jsonl(folds[1 - i], folder / f"train-{i}.jsonl")
    barrier()                                   # the halves are written before anyone trains on them
    parts = []
    # labels of fewer than two prompts cannot be split: not shown learnable (every rank reads the files)
    splittable = all((folder / f"train-{i}.jsonl").stat().st_size > 0 for i in range(2))
    for i in range(2 if splittable else 0):
        model = train_reward(config_for(str(folder / f"train-{i}.jsonl"), str(folder / f"model-{i}")))
        held = [x for x in folds[i] if not x.tie]
        if main and held:
            parts.append((evaluate_records(load_scorer(model), held)["accuracy"], len(held)))
    barrier()
    if main:
        shutil.rmtree(folder, ignore_errors=True)
    result = pooled_accuracy(parts)
    return {**result, "above_chance": above_chance(result["accuracy"], result["n"])}


def folds_by_prompt(records: list[PreferenceRecord], k: int = 2,
                    seed: int = 0) -> list[list[PreferenceRecord]]:
    """`records` split into k folds of whole prompts (every record of a prompt in one fold), the prompts
    dealt round-robin in a seeded random order."""
    keys = sorted({_key(x) for x in records})
    random.Random(seed).shuffle(keys)
    fold_of = {key: i % k for i, key in enumerate(keys)}
    return [[x for x in records if fold_of[_key(x)] == i] for i in range(k)]


def pooled_accuracy(parts: list[tuple[float, int]]) -> dict:
    """Accuracies measured on disjoint sets of labels, `(accuracy, n)` each, as one: their weighted mean,
    the number of labels and its 95% Wilson interval."""
    n = sum(count for _, count in parts)
    accuracy = sum(a * count for a, count in parts) / n if n else 0.5
    return {"accuracy": accuracy, "n": n, "interval": list(wilson_interval(accuracy, n))}


def above_chance(accuracy: float, n: int) -> bool:
    """True when an accuracy over n labels is above ½ at one-sided 5% (the Wilson lower bound at z 1.645)."""
    return n > 0 and wilson_interval(accuracy, n, z=Z_ONE_SIDED_95)[0] > 0.5


def _key(record: PreferenceRecord) -> str:
    return json.dumps(record.prompt, sort_keys=True, ensure_ascii=False)
