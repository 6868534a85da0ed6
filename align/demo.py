"""`make demo`: the furthest stretch of the loop that works end to end today, on the built-in model.

One round, offline, on a 2-core CPU:
  1. the initial policy (`builtin:smollm2-135m-instruct`) samples 4 reviews for each training prompt;
  2. a judge (the built-in VADER sentiment judge, or any `--judge module:function`) compares them,
     standing in for labelers: the best and the worst of each prompt make a preference record;
  3. a reward model (`builtin:minilm-l6`) is trained on those records;
  4. the policy is improved with DPO (LoRA) on the same records;
  5. the new policy and the initial one answer held-out prompts, and the judge and the reward model
     pick winners: the win rate over the initial policy.
The labeling app (human labels instead of the judge) and PPO come with later issues; then this demo
becomes `align loop --config recipes/demo.yaml`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

PRODUCTS = ["coffee grinder", "rain jacket", "electric kettle", "hiking boots", "desk lamp", "backpack",
            "bluetooth speaker", "cast iron pan", "yoga mat", "fountain pen", "board game", "tent",
            "road bike", "office chair", "teapot", "headphones", "sketchbook", "water bottle"]
PLACES = ["bakery in Lyon", "museum in Madrid", "beach in Crete", "cafe in Vienna", "park in Kyoto",
          "bookshop in Dublin", "hotel in Lisbon", "market in Marrakesh", "library in Prague",
          "ramen bar in Osaka", "zoo in Berlin", "lake in Ontario"]
MODEL = "builtin:smollm2-135m-instruct"


def review_prompts() -> tuple[list[str], list[str]]:
    """Training and held-out prompts over every product and place, split 2:1 with a fixed seed."""
    prompts = [f"Write a short review of the {s}." for s in PRODUCTS + PLACES]
    random.Random(0).shuffle(prompts)
    cut = len(prompts) * 2 // 3
    return prompts[:cut], prompts[cut:]


def judged_pairs(judge, prompt: str, texts: list[str]):
    """Rank the candidates by judge wins in a round robin; return (best, worst, strength) or None if
    the judge saw no difference."""
    wins = [0.0] * len(texts)
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            choice, _ = judge(prompt, texts[i], texts[j])
            if choice == "A":
                wins[i] += 1
            elif choice == "B":
                wins[j] += 1
            else:
                wins[i] += 0.5
                wins[j] += 0.5
    order = sorted(range(len(texts)), key=lambda k: -wins[k])
    best, worst = order[0], order[-1]
    if wins[best] == wins[worst]:
        return None
    _, strength = judge(prompt, texts[best], texts[worst])
    return texts[best], texts[worst], strength


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m align.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", default="vader", help="vader, or module:function (prompt, a, b) -> (choice, strength)")
    parser.add_argument("--out", default="outputs/demo")
    parser.add_argument("--dpo_steps", type=int, default=24)
    args = parser.parse_args(argv)

    from align.dpo import DPOConfig, train_dpo
    from align.evaluate import evaluate_policy, write_report
    from align.policy import Policy
    from reward.config import RewardConfig
    from reward.judges import load_judge
    from reward.model import RewardModel
    from reward.records import STRENGTH_MARGINS, PreferenceRecord, write_jsonl
    from reward.trainer import train_reward

    out = Path(args.out)
    judge = load_judge(args.judge)
    train, held_out = review_prompts()
    t0 = time.perf_counter()

    initial = Policy.from_pretrained(MODEL)
    samples = initial.generate(train, n=4, temperature=1.0, max_new_tokens=48, seed=0, progress=True)
    print(f"[1/5] the initial policy wrote 4 reviews for each of {len(train)} prompts "
          f"({time.perf_counter() - t0:.0f} s)")

    records = []
    for prompt, gens in zip(train, samples):
        pair = judged_pairs(judge, prompt, [g.text for g in gens])
        if pair:
            best, worst, strength = pair
            records.append(PreferenceRecord(
                prompt=[{"role": "user", "content": prompt}], chosen=[{"role": "assistant", "content": best}],
                rejected=[{"role": "assistant", "content": worst}], margin=STRENGTH_MARGINS[strength],
                labeler=f"judge:{args.judge}", source="demo"))
    data = out / "preferences.jsonl"
    write_jsonl(records, data)
    print(f"[2/5] the judge ({args.judge}) compared them: {len(records)} preference records in {data}")

    start = time.perf_counter()
    rm_dir = train_reward(RewardConfig(model="builtin:minilm-l6", data=str(data), output_dir=str(out / "reward"),
                                       num_train_epochs=4, per_device_train_batch_size=8, learning_rate=5e-5,
                                       max_length=192, save_steps=10**6, logging_steps=10**6))
    print(f"[3/5] reward model trained on them in {time.perf_counter() - start:.0f} s: {rm_dir}")

    start = time.perf_counter()
    dpo = DPOConfig(model=MODEL, data=str(data), output_dir=str(out / "dpo"), max_steps=args.dpo_steps,
                    per_device_train_batch_size=4, learning_rate=2e-4, beta=0.1, max_length=192,
                    save_steps=10**6, logging_steps=4)
    train_dpo(dpo)
    print(f"[4/5] DPO: LoRA adapter trained for {dpo.max_steps} steps in {time.perf_counter() - start:.0f} s: "
          f"{dpo.output_dir}")

    report = evaluate_policy(Policy.from_pretrained(dpo.output_dir), initial, [[{"role": "user", "content": p}]
                                                                             for p in held_out],
                             reward_model=RewardModel.from_pretrained(rm_dir), judge=judge, temperature=0.7,
                             max_new_tokens=48, seed=1)
    path = write_report(report, out / "evaluation")
    print(f"[5/5] held-out prompts ({len(held_out)}): reward-model win rate {report['reward']['win_rate']:.2f}, "
          f"KL {report['kl']:.2f} nats, length {report['length']['policy_tokens']:.0f} vs "
          f"{report['length']['reference_tokens']:.0f} tokens; report {path}")
    example = report["examples"][0]
    print(f"\nExample ({example['prompt']!r}):\n  initial: {example['reference'][:160]}\n  new:     {example['policy'][:160]}")
    print(f"\nWhat this demo did, in {time.perf_counter() - t0:.0f} s: one round of the loop with a judge standing in "
          "for labelers (generate -> judge -> reward model -> DPO -> evaluate).\nNot yet part of it: the labeling "
          "app, PPO and several rounds (open issues 3, 6, 7).")
    print(f"demo: DPO policy vs initial policy on held-out prompts, judge ({args.judge}) win rate "
          f"{report['judge']['win_rate']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
