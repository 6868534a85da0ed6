"""Reward training on K-way rankings: InstructGPT's way (each response scored once per ranking, the
loss over its C(K, 2) pairs) against the same rankings expanded into pairs (each response scored K − 1
times), same model, data, epochs and batch of responses, each side in its own process.

    python -m benchmarks.reward_rankings [--items 400] [--epochs 1]

Data: FineGrainedRLHF's K-way QA comparisons (shared/data; 4 predictions per question, 6 pairwise human
judgements with ties), each item ranked by its wins (ties half). The first `--items` train; the last
100 items' pairwise judgements are the held-out set both models are scored on. Reports seconds per
epoch, the held-out accuracy of each, and the time ratio rankings / pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

FG = Path(__file__).resolve().parents[2] / "shared" / "data" / "finegrained-rlhf-qa" / "dev_feedback.json"


def write_data(folder: Path, items: int) -> tuple[Path, Path, Path]:
    from foundation.readers import read_preferences
    from foundation.records import write_jsonl
    from foundation.stats import dense_ranks

    records = read_preferences(str(FG), "kway").records
    by_item: dict[str, list] = {}
    for r in records:
        by_item.setdefault(r.pair_id.split(":")[0], []).append(r)
    groups = list(by_item.values())
    train, heldout = groups[:items], groups[-100:]
    rankings, pairs = [], []
    for group in train:
        responses = []
        for r in group:
            for side in (r.chosen, r.rejected):
                if side not in responses:
                    responses.append(side)
        wins = [0.0] * len(responses)
        for r in group:
            a, b = responses.index(r.chosen), responses.index(r.rejected)
            wins[a] += 0.5 if r.tie else 1.0
            wins[b] += 0.5 if r.tie else 0.0
        ranks = dense_ranks(wins)
        rankings.append({"prompt": group[0].prompt, "responses": responses, "ranks": ranks})
        for i, j in combinations(range(len(responses)), 2):               # the same ranking, as pairs
            better, worse = (i, j) if ranks[i] <= ranks[j] else (j, i)
            pairs.append({"prompt": group[0].prompt, "chosen": responses[better],
                          "rejected": responses[worse], "tie": ranks[i] == ranks[j]})
    paths = folder / "rankings.jsonl", folder / "pairs.jsonl", folder / "heldout.jsonl"
    paths[0].write_text("".join(json.dumps(r) + "\n" for r in rankings))
    paths[1].write_text("".join(json.dumps(r) + "\n" for r in pairs))
    write_jsonl([r for group in heldout for r in group if not r.tie], paths[2])
    return paths


def run(data: Path, heldout: Path, out: Path, epochs: int, responses_per_batch: int, k: int) -> dict:
    """One `align reward train` in its own process; the batch holds `responses_per_batch` responses."""
    rankings = "rankings" in data.name
    batch = responses_per_batch // (k if rankings else 2)
    command = [sys.executable, "-m", "align.cli", "reward", "train", "--model", "builtin:minilm-l6",
               "--data", str(data), "--eval_data", str(heldout), "--output_dir", str(out),
               "--num_train_epochs", str(epochs), "--per_device_train_batch_size", str(batch),
               "--max_length", "384", "--save_steps", "100000", "--logging_steps", "1000"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    report = json.loads((out / "train_report.json").read_text())
    member = report["members"][0]
    return {"side": "rankings" if rankings else "expanded pairs", "batch": batch,
            "train_seconds": round(member["train_seconds"], 1),
            "wall_seconds": round(time.perf_counter() - start, 1),
            "steps": member["steps"], "heldout_accuracy": round(report["eval"]["accuracy"], 3),
            "heldout_pairs": report["eval"]["pairs"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--responses_per_batch", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rankings, pairs, heldout = write_data(folder, args.items)
        rows = [run(rankings, heldout, folder / "rm-rankings", args.epochs, args.responses_per_batch, 4),
                run(pairs, heldout, folder / "rm-pairs", args.epochs, args.responses_per_batch, 4)]
    for row in rows:
        print(json.dumps(row))
    ratio = rows[0]["train_seconds"] / rows[1]["train_seconds"]
    print(json.dumps({"time_ratio_rankings_over_pairs": round(ratio, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
