"""Reward-model accuracy on real human data: HH-RLHF harmless (shared), first 1,000 rows to train,
last 200 to evaluate.

    .venv/bin/python -m benchmarks.reward_hh --model builtin:minilm-l6 [--lora] [--out outputs/bench-rm]

Writes the split files next to the output and prints the held-out report line (accuracy, ECE).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from align.cli import main as align_main
from foundation.readers import read_preferences
from foundation.records import write_jsonl

HH = (Path(__file__).resolve().parents[1].parent
      / "shared/data/hh-rlhf-harmless/harmless-base-test-part1.jsonl.gz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="builtin:minilm-l6")
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--out", default="outputs/bench-rm")
    parser.add_argument("--extra", default="", help="More `align reward train` flags, space-separated.")
    args = parser.parse_args(argv)
    out = Path(args.out)
    records = read_preferences(args.data).records
    write_jsonl(records[:1000], out / "train.jsonl")
    write_jsonl(records[-200:], out / "heldout.jsonl")
    start = time.perf_counter()
    code = align_main(["reward", "train", "--model", args.model, "--data", str(out / "train.jsonl"),
                       "--eval_data", str(out / "heldout.jsonl"), "--output_dir", str(out / "model"),
                       "--save_steps", "100000", "--logging_steps", "25", *args.extra.split()])
    seconds = time.perf_counter() - start
    report = json.loads((out / "model" / "train_report.json").read_text())
    ev = report["eval"]
    print(json.dumps({"model": args.model, "extra": args.extra, "train_seconds": round(seconds, 1),
                      "accuracy": ev["accuracy"], "ece": ev["ece"],
                      "length_reward_correlation": ev["length_reward_correlation"],
                      "accuracy_chosen_shorter": ev["accuracy_chosen_shorter"],
                      "truncated": report["members"][0]["truncated"]}))
    return code


if __name__ == "__main__":
    sys.exit(main())
