"""Reward models on the shared HH-RLHF rows, cross-fitted: which backbone and settings, alone or averaged,
predict human labels they were not trained on.

    .venv/bin/python -m benchmarks.reward_folds --folds 2 --out outputs/rm-folds \\
        --member "minilm=builtin:minilm-l6 --max_length 256 --learning_rate 5e-5" \\
        --member "smollm2=builtin:smollm2-135m-instruct --lora true --learning_rate 1e-4 ..."

The rows are cut into `--folds` contiguous folds; for each fold every member (`NAME=MODEL FLAGS...`,
flags as `align reward train` takes them) trains on the other folds and scores the fold's chosen and
rejected replies. Every row is then held out exactly once, so each member's accuracy is over all the
rows (95% Wilson interval), and the members are compared on the same rows (paired). Ensembles average
the members' rewards after dividing each member's by its own standard deviation on the fold (no label
is used for that). Scores go to OUT/scores.json, so other combinations need no retraining.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

from foundation.readers import read_preferences
from foundation.records import write_jsonl
from foundation.stats import wilson_interval

HH = (Path(__file__).resolve().parents[1].parent
      / "shared/data/hh-rlhf-harmless/harmless-base-test-part1.jsonl.gz")


def parse_member(spec: str) -> tuple[str, str, list[str]]:
    name, _, rest = spec.partition("=")
    model, *flags = rest.split()
    return name, model, flags


def fit_and_score(name: str, model: str, flags: list[str], train: list, held: list, folder: Path) -> dict:
    """Train one member on `train`, score `held`'s chosen and rejected replies."""
    from align.cli import main as align_main
    from reward.model import RewardModel

    write_jsonl(train, folder / "train.jsonl")
    start = time.perf_counter()
    code = align_main(["reward", "train", "--model", model, "--data", str(folder / "train.jsonl"),
                       "--output_dir", str(folder / name), "--save_steps", "100000", "--logging_steps", "25",
                       *flags])
    if code != 0:
        raise SystemExit(f"{name}: align reward train failed ({code})")
    seconds = time.perf_counter() - start
    scorer = RewardModel.from_pretrained(str(folder / name))
    prompts = [r.prompt for r in held]
    return {"chosen": scorer.score(prompts, [r.chosen for r in held]),
            "rejected": scorer.score(prompts, [r.rejected for r in held]), "train_seconds": seconds}


def combined(scores: dict, names: tuple[str, ...], folds: int) -> list[bool]:
    """Per row, whether the members' mean standardized reward prefers the chosen reply."""
    right = []
    for k in range(folds):
        parts = [scores[n][k] for n in names]
        scales = [statistics.pstdev(p["chosen"] + p["rejected"]) or 1.0 for p in parts]
        for i in range(len(parts[0]["chosen"])):
            margin = sum((p["chosen"][i] - p["rejected"][i]) / s for p, s in zip(parts, scales))
            right.append(margin > 0)
    return right


def paired_difference(a: list[bool], b: list[bool]) -> tuple[float, float, float]:
    """Mean of a − b over the same rows, with a 95% normal interval."""
    d = [int(x) - int(y) for x, y in zip(a, b)]
    mean = statistics.fmean(d)
    half = 1.96 * statistics.pstdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--member", action="append", default=[], help="NAME=MODEL [align reward train flags]")
    parser.add_argument("--out", default="outputs/rm-folds")
    args = parser.parse_args(argv)
    out = Path(args.out)
    records = [r for r in read_preferences(args.data).records if not r.tie]
    bounds = [round(k * len(records) / args.folds) for k in range(args.folds + 1)]
    saved = out / "scores.json"
    scores = json.loads(saved.read_text()) if saved.is_file() else {}
    for spec in args.member:
        name, model, flags = parse_member(spec)
        for k in range(args.folds):
            if len(scores.get(name, [])) > k:
                continue                                     # already scored (a rerun adds members)
            held = records[bounds[k]:bounds[k + 1]]
            train = records[:bounds[k]] + records[bounds[k + 1]:]
            scores.setdefault(name, []).append(
                {**fit_and_score(name, model, flags, train, held, out / f"fold-{k}"), "spec": spec})
            saved.write_text(json.dumps(scores))
    names = [parse_member(s)[0] for s in args.member] or list(scores)
    rows = {(n,): combined(scores, (n,), args.folds) for n in names}
    for size in range(2, len(names) + 1):
        rows.update({c: combined(scores, c, args.folds) for c in itertools.combinations(names, size)})
    best_single = max(names, key=lambda n: sum(rows[(n,)]))
    print(f"{len(records)} rows, {args.folds} folds (each row held out once); paired against {best_single}")
    print("| members | held-out accuracy [95%] | vs the best single [95%] | train s per fold |")
    print("|---|---|---|---|")
    for combo, right in rows.items():
        lo, hi = wilson_interval(sum(right) / len(right), len(right))
        diff = paired_difference(right, rows[(best_single,)])
        seconds = sum(statistics.fmean(f["train_seconds"] for f in scores[n]) for n in combo)
        print(f"| {' + '.join(combo)} | {sum(right) / len(right):.3f} [{lo:.3f}, {hi:.3f}] | "
              f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}] | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
