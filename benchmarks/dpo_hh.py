"""DPO of builtin:smollm2-135m-instruct + LoRA on shared HH-RLHF pairs: held-out implicit-reward
accuracy and its trend over training.

    .venv/bin/python -m benchmarks.dpo_hh --train 128 --heldout 64 --steps 32 --every 16

Trains on the first `--train` pairs, evaluates the adapter at every `--every` steps (and at step 0,
where the accuracy of the implicit reward is 0 by construction: policy = reference) on the last
`--heldout` pairs of the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HH = (Path(__file__).resolve().parents[1].parent
      / "shared/data/hh-rlhf-harmless/harmless-base-test-part1.jsonl.gz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=128)
    parser.add_argument("--heldout", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--every", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--out", default="outputs/bench-dpo-hh")
    parser.add_argument("--eval_only", action="store_true",
                        help="Evaluate the checkpoints of an earlier run.")
    args = parser.parse_args(argv)

    from align.dpo import DPOConfig
    from align.dpo.trainer import train_dpo
    from align.evaluate import implicit_reward_accuracy
    from align.policy import Policy
    from foundation.readers import read_preferences
    from foundation.records import write_jsonl

    out = Path(args.out)
    records = read_preferences(HH).records
    write_jsonl(records[: args.train], out / "train.jsonl")
    heldout = records[-args.heldout:]
    config = DPOConfig(model="builtin:smollm2-135m-instruct", data=str(out / "train.jsonl"),
                       output_dir=str(out / "dpo"), max_steps=args.steps,
                       per_device_train_batch_size=args.batch, learning_rate=args.lr,
                       beta=args.beta, max_length=256, save_steps=args.every, logging_steps=1)
    if not args.eval_only:
        train_dpo(config)
    trend = []
    for step in range(args.every, args.steps + 1, args.every):
        ckpt = out / "dpo" / f"checkpoint-{step}"
        policy = Policy.from_pretrained("builtin:smollm2-135m-instruct", adapter=str(ckpt))
        result = implicit_reward_accuracy(policy, heldout, beta=args.beta)
        trend.append({"step": step, **result})
        print(json.dumps(trend[-1]), flush=True)
    state = json.loads((out / "dpo" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    runtime = next(h["train_runtime"] for h in state["log_history"] if "train_runtime" in h)
    summary = {"train_pairs": args.train, "heldout_pairs": len(heldout), "steps": args.steps,
               "seconds_per_step": runtime / args.steps, "trend": trend,
               "loss_first4": sum(losses[:4]) / 4, "loss_last4": sum(losses[-4:]) / 4}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
