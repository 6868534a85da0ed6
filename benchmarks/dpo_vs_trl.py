"""Our `align dpo` against plain TRL DPOTrainer (its defaults), same model, data, steps and batch.

    .venv/bin/python -m benchmarks.dpo_vs_trl --pairs 64 --steps 16 --batch 4

Both train a LoRA adapter (r=16, the same initialisation seed) on builtin:smollm2-135m-instruct over
the first `--pairs` shared HH-RLHF pairs, one epoch, max_length 256 for both (TRL's default is 1024;
the same cap keeps the work identical). Each side runs in its own process: peak RSS is its own.
Reported: seconds per step from building the trainer (tokenization, any reference pass) to the end
of `train()`, model loading excluded on both sides; peak RSS; the loss curves; the ratios ours / TRL.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

HH = (Path(__file__).resolve().parents[1].parent
      / "shared/data/hh-rlhf-harmless/harmless-base-test-part1.jsonl.gz")
MODEL = "builtin:smollm2-135m-instruct"


def run_side(impl: str, pairs: int, steps: int, batch: int, out: Path, ours: dict | None = None) -> dict:
    import time

    from foundation.readers import read_preferences
    from foundation.records import write_jsonl

    data = out / "train.jsonl"
    write_jsonl(read_preferences(HH).records[:pairs], data)
    if impl == "ours":
        from align.dpo import DPOConfig
        from align.dpo.trainer import build_dpo_trainer

        config = DPOConfig(model=MODEL, data=str(data), output_dir=str(out / "ours"), max_steps=steps,
                           per_device_train_batch_size=batch, max_length=256, learning_rate=5e-5,
                           logging_steps=1, save_steps=10**6, lora_r=16, lora_alpha=32, **(ours or {}))
        start = time.perf_counter()
        trainer, _ = build_dpo_trainer(config)   # tokenization (and any reference pass) counts too
        trainer.train()
        seconds = time.perf_counter() - start
        state_file = out / "ours_state.json"
        trainer.state.save_to_json(str(state_file))
    else:
        import trl
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, set_seed

        from foundation.models import load_tokenizer, resolve_model

        set_seed(42)
        tok = load_tokenizer(MODEL)
        model = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL))
        rows = [{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
                for r in read_preferences(data).records]
        args = trl.DPOConfig(output_dir=str(out / "trl"), max_steps=steps, per_device_train_batch_size=batch,
                             max_length=256, learning_rate=5e-5, logging_steps=1, save_strategy="no",
                             report_to=[], use_cpu=True, seed=42)
        peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                          "gate_proj", "up_proj", "down_proj"])
        start = time.perf_counter()
        trainer = trl.DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                 processing_class=tok, peft_config=peft)
        trainer.train()
        seconds = time.perf_counter() - start
        state_file = out / "trl_state.json"
        trainer.state.save_to_json(str(state_file))
    state = json.loads(state_file.read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    return {"impl": impl, "seconds_per_step": seconds / steps, "losses": losses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["ours", "trl"])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default="outputs/bench-dpo-vs-trl")
    parser.add_argument("--ours", default="{}", help="JSON of DPOConfig fields for our side, e.g. "
                        "'{\"prefix_sharing\": false}' or '{\"gradient_checkpointing\": true}'")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.impl:
        print(json.dumps(run_side(args.impl, args.pairs, args.steps, args.batch, out, json.loads(args.ours))))
        return 0
    import statistics

    from benchmarks.runner import alternate_sides

    side = (f"{shlex.quote(sys.executable)} -m benchmarks.dpo_vs_trl "
            f"--pairs {args.pairs} --steps {args.steps} "
            f"--batch {args.batch} --out {shlex.quote(str(out))} --ours {shlex.quote(args.ours)} --impl")
    results, med = alternate_sides(side, ("trl", "ours"), args.repeat, ("seconds_per_step",),
                                   env={"HF_HUB_OFFLINE": "1"})
    for k, m in med.items():
        losses = results[k][0]["losses"]
        print(f"{k:>4}: {m['seconds_per_step']:.2f} s/step, peak RSS {m['peak_rss_mb']:.0f} MB, "
              f"loss first/last {losses[0]:.4f}/{losses[-1]:.4f}, "
              f"mean of last 4 {statistics.fmean(losses[-4:]):.4f}")
    print(f"ratios ours/TRL: "
          f"time per step {med['ours']['seconds_per_step'] / med['trl']['seconds_per_step']:.2f}, "
          f"peak memory {med['ours']['peak_rss_mb'] / med['trl']['peak_rss_mb']:.2f} "
          f"(medians of {args.repeat}; {args.steps} steps of batch {args.batch} over {args.pairs} pairs)")
    (out / "result.json").write_text(json.dumps({"runs": results, "median": med}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
