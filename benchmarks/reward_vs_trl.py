"""Our reward trainer against TRL's RewardTrainer: same backbone, data, batch size and steps, one run.

    .venv/bin/python -m benchmarks.reward_vs_trl --steps 125 --repeat 2

Each side trains in its own process (so peak memory is its own) on the first 1,000 shared HH-RLHF
pairs and is then scored, by the same evaluation code, on the last 200. Reported: training pairs per
second (training loop only), peak RSS of the process, held-out accuracy, and the ratios ours / TRL.
TRL drops pairs longer than max_length; ours truncates the prompt's start and keeps them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

HH = (Path(__file__).resolve().parents[1].parent
      / "shared/data/hh-rlhf-harmless/harmless-base-test-part1.jsonl.gz")


def _split(out: Path):
    from foundation.readers import read_preferences
    from foundation.records import write_jsonl

    records = read_preferences(HH).records
    write_jsonl(records[:1000], out / "train.jsonl")
    write_jsonl(records[-200:], out / "heldout.jsonl")


def run_side(impl: str, steps: int, batch: int, max_length: int, lr: float, out: Path) -> dict:
    import torch

    from foundation.readers import read_preferences
    from reward.evaluate import evaluate_records
    from reward.model import RewardModel

    torch.manual_seed(0)
    model_dir = out / f"model-{impl}"
    if impl == "ours":
        from reward.config import RewardConfig
        from reward.trainer import train_one

        config = RewardConfig(model="builtin:minilm-l6", data=str(out / "train.jsonl"),
                              output_dir=str(model_dir), max_steps=steps, per_device_train_batch_size=batch,
                              max_length=max_length,
                              learning_rate=lr, save_steps=10**6, logging_steps=10**6, warmup_ratio=0.0)
        records = read_preferences(config.data).records
        # the training loop alone
        seconds = train_one(config, records, str(model_dir), seed=0)["train_seconds"]
        pairs = steps * batch
    else:
        import trl
        from datasets import Dataset

        from foundation.options import ModelOptions
        from reward.backbone import load_reward_backbone

        model, tok = load_reward_backbone(ModelOptions(model="builtin:minilm-l6", lora=False))
        rows = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
                for r in read_preferences(out / "train.jsonl").records]
        args = trl.RewardConfig(output_dir=str(model_dir), max_steps=steps, per_device_train_batch_size=batch,
                                max_length=max_length, learning_rate=lr, save_strategy="no", report_to=[],
                                logging_steps=10**6, use_cpu=True, seed=0, lr_scheduler_type="linear")
        trainer = trl.RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                    processing_class=tok)
        kept = len(trainer.train_dataset)
        seconds = trainer.train().metrics["train_runtime"]
        pairs = steps * batch
        RewardModel(trainer.model, tok, max_length).save_pretrained(model_dir)
        print(f"TRL kept {kept} of {len(rows)} training pairs at max_length {max_length}", file=sys.stderr)
    rm = RewardModel.from_pretrained(str(model_dir), max_length=max_length)
    acc = evaluate_records(rm, read_preferences(out / "heldout.jsonl").records)["accuracy"]
    return {"impl": impl, "train_seconds": seconds, "pairs_per_second": pairs / seconds,
            "heldout_accuracy": acc}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["ours", "trl"], help="Run one side (used by the driver).")
    parser.add_argument("--steps", type=int, default=125, help="125 steps of 8 = one epoch of 1,000 pairs.")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default="outputs/bench-rm-vs-trl")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.impl:
        print(json.dumps(run_side(args.impl, args.steps, args.batch, args.max_length, args.lr, out)))
        return 0
    from benchmarks.runner import alternate_sides

    _split(out)
    side = (f"{shlex.quote(sys.executable)} -m benchmarks.reward_vs_trl "
            f"--steps {args.steps} --batch {args.batch} "
            f"--max_length {args.max_length} --lr {args.lr} --out {shlex.quote(str(out))} --impl")
    results, med = alternate_sides(side, ("trl", "ours"), args.repeat,
                                   ("pairs_per_second", "heldout_accuracy"), env={"HF_HUB_OFFLINE": "1"})
    for k, m in med.items():
        print(f"{k:>4}: {m['pairs_per_second']:.2f} pairs/s, peak RSS {m['peak_rss_mb']:.0f} MB, "
              f"held-out accuracy {m['heldout_accuracy']:.3f}")
    print(f"ratios ours/TRL: speed {med['ours']['pairs_per_second'] / med['trl']['pairs_per_second']:.2f}x, "
          f"memory {med['ours']['peak_rss_mb'] / med['trl']['peak_rss_mb']:.2f}, "
          f"accuracy {med['ours']['heldout_accuracy'] - med['trl']['heldout_accuracy']:+.3f} "
          f"(medians of {args.repeat}; {args.steps} steps of batch {args.batch}, "
          f"max_length {args.max_length})")
    (out / "result.json").write_text(json.dumps({"runs": results, "median": med}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
