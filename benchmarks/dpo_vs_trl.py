"""Our `align dpo` against plain TRL DPOTrainer (its defaults), same model, data, steps and batch.

    .venv/bin/python -m benchmarks.dpo_vs_trl --pairs 64 --steps 16 --batch 4

Both train a LoRA adapter (r=16, the same initialisation seed) on builtin:smollm2-135m-instruct over
the first `--pairs` shared HH-RLHF pairs, one epoch, max_length 256 for both (TRL's default is 1024;
the same cap keeps the work identical). Each side runs in its own process: peak RSS is its own.
Reported: seconds per step from building the trainer (tokenization, any reference pass) to the end
of `train()`, model loading excluded on both sides; peak RSS; the loss curves; the ratios ours / TRL.

And how much of the machine each side uses: the floating-point operations a side executes (counted in
one more run of each side with torch's FLOP formulas for matmuls and attention: forward, backward, the
reference pass and any recomputation) per second of its timed runs, as a fraction of this machine's own
matmul peak (a 2048 x 2048 GEMM, best of 5, in bf16 and in fp32, on the same threads).
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


def matmul_peak(dtype, n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of this machine's best n x n GEMM in `dtype` (best of `repeat`, after a warm-up)."""
    import time

    import torch

    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def _flop_counter():
    """A dispatch mode that adds up the FLOPs of every matmul and attention call (torch's own formulas,
    `torch.utils.flop_counter`), without FlopCounterMode's per-module bookkeeping, which grew past this
    machine's memory over a whole TRL run."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Flops(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    return Flops()


def run_side(impl: str, pairs: int, steps: int, batch: int, out: Path, ours: dict | None = None,
             count_flops: bool = False) -> dict:
    import time
    from contextlib import nullcontext

    counter = _flop_counter() if count_flops else None

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
        with counter or nullcontext():
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
        with counter or nullcontext():
            trainer = trl.DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                     processing_class=tok, peft_config=peft)
            trainer.train()
        seconds = time.perf_counter() - start
        state_file = out / "trl_state.json"
        trainer.state.save_to_json(str(state_file))
    state = json.loads(state_file.read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    flops = {"flops": counter.total} if counter else {}
    return {"impl": impl, "seconds_per_step": seconds / steps, "losses": losses, **flops}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["ours", "trl"])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default="outputs/bench-dpo-vs-trl")
    parser.add_argument("--count_flops", action="store_true", help="with --impl: count the side's FLOPs "
                        "(counting slows it: not a timed run)")
    parser.add_argument("--ours", default="{}", help="JSON of DPOConfig fields for our side, e.g. "
                        "'{\"prefix_sharing\": false}' or '{\"gradient_checkpointing\": true}'")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.impl:
        print(json.dumps(run_side(args.impl, args.pairs, args.steps, args.batch, out, json.loads(args.ours),
                                  args.count_flops)))
        return 0
    import statistics

    import torch

    from benchmarks.runner import alternate_sides, run_once
    from foundation.precision import cpu_kind

    side = (f"{shlex.quote(sys.executable)} -m benchmarks.dpo_vs_trl "
            f"--pairs {args.pairs} --steps {args.steps} "
            f"--batch {args.batch} --out {shlex.quote(str(out))} --ours {shlex.quote(args.ours)} --impl")
    peak = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    results, med = alternate_sides(side, ("trl", "ours"), args.repeat, ("seconds_per_step",),
                                   env={"HF_HUB_OFFLINE": "1"})
    (out / "result.json").write_text(json.dumps({"runs": results, "median": med}, indent=2))
    print(f"CPU: {cpu_kind()}, {torch.get_num_threads()} threads; matmul peak "
          f"bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s, fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s")
    for k in ("trl", "ours"):
        counted = json.loads(run_once(f"{side} {k} --count_flops", env={"HF_HUB_OFFLINE": "1"})
                             .stdout.strip().splitlines()[-1])
        rate = counted["flops"] / (med[k]["seconds_per_step"] * args.steps)
        med[k].update(flops=counted["flops"], flops_per_second=rate,
                      peak_fraction={d: rate / p for d, p in peak.items()})
    for k, m in med.items():
        losses = results[k][0]["losses"]
        print(f"{k:>4}: {m['seconds_per_step']:.2f} s/step, peak RSS {m['peak_rss_mb']:.0f} MB, "
              f"loss first/last {losses[0]:.4f}/{losses[-1]:.4f}, "
              f"mean of last 4 {statistics.fmean(losses[-4:]):.4f}; {m['flops'] / 1e12:.2f} TFLOP executed, "
              f"{m['flops_per_second'] / 1e9:.0f} GFLOP/s = {m['peak_fraction']['bf16']:.0%} of the bf16 "
              f"matmul peak ({m['peak_fraction']['fp32']:.0%} of fp32's)")
    print(f"ratios ours/TRL: "
          f"time per step {med['ours']['seconds_per_step'] / med['trl']['seconds_per_step']:.2f}, "
          f"peak memory {med['ours']['peak_rss_mb'] / med['trl']['peak_rss_mb']:.2f} "
          f"(medians of {args.repeat}; {args.steps} steps of batch {args.batch} over {args.pairs} pairs)")
    (out / "result.json").write_text(json.dumps({"runs": results, "median": med, "matmul_peak": peak,
                                                 "cpu": cpu_kind()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
