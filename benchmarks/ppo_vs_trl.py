"""Our PPO against trl 1.12's PPOTrainer (the last TRL with one; installed apart), same run shape.

    pip install --no-deps --target /tmp/trl112 trl==1.12.0
    python -m benchmarks.ppo_vs_trl --trl112 /tmp/trl112 --steps 4 [--repeats 2] [--precision fp32]

Both: builtin SmolLM2-135M-Instruct + LoRA r=16 on the review training prompts, 8 rollouts per update,
one minibatch of 8, 4 PPO epochs, 40 new tokens, a reward model = SmolLM2 with a scalar head (same
weights, seed 0). One precision on both sides: `bf16` (default; the fast one on a CPU with
AVX512-BF16 or a GPU): every model's weights loaded in bf16 and bf16 autocast (TRL: `dtype=bfloat16`
as its PPO example's `--dtype bfloat16`, and `bf16=True`; ours: `dtype: bfloat16`, `mixed_precision:
bf16`, the LoRA adapter and value head kept in fp32 by peft), or `fp32` on both. torch.compile on
both sides by default (TRL: `torch_compile=True`, which sets accelerate's dynamo backend; whether its
PPOTrainer's wrapper is then compiled was not checked, and its time did not change; ours:
`torch_compile: true`, each decoder layer), `--no-compile` for neither. TRL holds policy (LoRA;
reference = adapter disabled), a separate value model and the reward model; ours holds one base (policy
adapter + value head + disabled-adapter reference) and scores through the same reward model. Each side
runs in its own process (peak RSS by wait4); seconds per update exclude loading and the first update
(warm-up, where the compiling happens: its time is printed in `all_updates`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

MODEL = "builtin:smollm2-135m-instruct"
ROLLOUTS, NEW_TOKENS, EPOCHS = 8, 40, 4
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def reward_model(precision: str):
    import torch
    from transformers import AutoModelForSequenceClassification

    from foundation.models import load_tokenizer, resolve_model

    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(resolve_model(MODEL), num_labels=1,
                                                            dtype=DTYPES[precision])
    tok = load_tokenizer(MODEL, padding_side="right")
    rm.config.pad_token_id = tok.pad_token_id
    return rm.eval(), tok


def run_ours(steps: int, precision: str, compile_: bool) -> dict:
    import torch

    from align.loop.prompts import TRAIN_SUBJECTS, review_prompts
    from align.ppo.config import PPOConfig
    from align.ppo.trainer import PPOTrainer

    rm, tok = reward_model(precision)

    @torch.no_grad()
    def score(prompts, responses):
        texts = [tok.apply_chat_template([*p, {"role": "assistant", "content": r}], tokenize=False)
                 for p, r in zip(prompts, responses)]
        batch = tok(texts, return_tensors="pt", padding=True)
        return rm(**batch).logits[:, 0].float().tolist()

    config = PPOConfig(model=MODEL, prompts="unused", output_dir="/tmp/ppo-bench-ours", max_steps=steps,
                       per_device_train_batch_size=ROLLOUTS, mini_batch_size=ROLLOUTS, ppo_epochs=EPOCHS,
                       max_new_tokens=NEW_TOKENS, save_steps=10**6, dtype=DTYPES[precision],
                       mixed_precision="no" if precision == "fp32" else "bf16", torch_compile=compile_)
    trainer = PPOTrainer(config, reward_fn=score,
                         prompts=[[{"role": "user", "content": p}]
                                  for p in review_prompts()[0][:TRAIN_SUBJECTS]])   # one per subject
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - t)
    return {"side": "ours", "seconds_per_update": times}


def run_trl(steps: int, trl_dir: str, precision: str, compile_: bool) -> dict:
    sys.path.insert(0, trl_dir)
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    from align.loop.prompts import TRAIN_SUBJECTS, review_prompts
    from foundation.models import load_tokenizer, resolve_model

    path = resolve_model(MODEL)
    tok = load_tokenizer(MODEL, padding_side="left")
    rm, _ = reward_model(precision)
    torch.manual_seed(0)
    value = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=DTYPES[precision])
    value.config.pad_token_id = tok.pad_token_id
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[precision])
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                       add_generation_prompt=True)
               for p in review_prompts()[0][:TRAIN_SUBJECTS]]
    ds = Dataset.from_dict({"input_ids": [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]})
    times, last = [], [None]

    class Timer(TrainerCallback):   # PPOTrainer 1.12 runs its own loop: it calls on_step_end only
        def on_train_begin(self, args, state, control, **kw):
            last[0] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

    args = PPOConfig(output_dir="/tmp/ppo-bench-trl", per_device_train_batch_size=ROLLOUTS,
                     num_mini_batches=1, num_ppo_epochs=EPOCHS, response_length=NEW_TOKENS,
                     total_episodes=ROLLOUTS * steps,
                     local_rollout_forward_batch_size=ROLLOUTS, stop_token="eos", bf16=precision == "bf16",
                     use_cpu=True,
                     report_to=[], save_strategy="no", num_sample_generations=0, learning_rate=3e-5,
                     gradient_checkpointing=False, torch_compile=compile_)
    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=None, reward_model=rm,
                         value_model=value, train_dataset=ds, peft_config=LoraConfig(
                             r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]), callbacks=[Timer()])
    trainer.train()
    return {"side": "trl-1.12", "seconds_per_update": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--trl112", default="/tmp/trl112")
    parser.add_argument("--precision", choices=list(DTYPES), default="bf16")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch.compile on both sides (TRL: torch_compile=True; ours: torch_compile); "
                             "--no-compile for eager on both")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each side, in ABBA order; the time ratio is of the medians of all "
                             "their steady updates, the memory ratio of the largest peaks")
    parser.add_argument("--side", choices=["ours", "trl"], help="(internal) run one side in this process")
    args = parser.parse_args()
    if args.side:
        out = run_ours(args.steps, args.precision, args.compile) if args.side == "ours" \
            else run_trl(args.steps, args.trl112, args.precision, args.compile)
        print("RESULT " + json.dumps(out))
        return
    from benchmarks.runner import run_once

    compile_flag = "--compile" if args.compile else "--no-compile"
    # ABBA order (trl, ours, ours, trl, ...): a machine whose speed drifts during the runs (this 2-core
    # VM's TRL time moved from 26 to 17.5 s an update within an hour) weighs on both sides alike
    pairs = [("trl", "ours") if i % 2 == 0 else ("ours", "trl") for i in range(args.repeats)]
    order = [side for pair in pairs for side in pair]
    steady: dict[str, list[float]] = {"trl": [], "ours": []}
    rss: dict[str, list[float]] = {"trl": [], "ours": []}
    for side in order:
        run = run_once(f"{sys.executable} -m benchmarks.ppo_vs_trl --side {side} --steps {args.steps} "
                       f"--trl112 {args.trl112} --precision {args.precision} {compile_flag}",
                       env={"HF_HUB_OFFLINE": "1"})
        result = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))[7:])
        updates = result["seconds_per_update"][1:] or result["seconds_per_update"]
        steady[side] += updates
        rss[side].append(run.peak_rss_mb)
        print(json.dumps({side: {"seconds_per_update": round(sum(updates) / len(updates), 2),
                                 "peak_rss_mb": round(run.peak_rss_mb),
                                 "all_updates": [round(x, 2) for x in result["seconds_per_update"]]}}),
              flush=True)
    median = {side: statistics.median(times) for side, times in steady.items()}
    print(json.dumps({"median_seconds_per_update": {k: round(v, 2) for k, v in median.items()},
                      "time_ratio_ours_over_trl": round(median["ours"] / median["trl"], 2),
                      "memory_ratio_ours_over_trl": round(max(rss["ours"]) / max(rss["trl"]), 2)}))


if __name__ == "__main__":
    main()
