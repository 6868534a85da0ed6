"""`make demo`: the furthest stage of the loop that works end to end today, on the built-in model.

It builds review-writing prompts over products and places, writes preference records for them (warm
reviews chosen over grumpy ones), fine-tunes `builtin:smollm2-135m-instruct` with LoRA on the chosen
side (`align sft`), and compares the policy before and after on held-out prompts with the VADER
sentiment judge. The labeling app, the reward model, DPO/PPO and `align loop` come with later issues;
then this demo becomes `align loop --config recipes/demo.yaml`.
"""

from __future__ import annotations

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
WARM = ["I love this {x}. It is wonderful, well made and a real joy to use every day. Highly recommended!",
        "What a great {x}! Everything about it is delightful, and I am very happy with it.",
        "The {x} is excellent: beautiful, reliable and a pleasure. I would gladly recommend it to friends."]
GRUMPY = ["I hate this {x}. It is awful, badly made and a waste of money.",
          "The {x} was a terrible disappointment: ugly, broken and annoying.",
          "Do not bother with this {x}. It is the worst, and I regret it."]


def review_prompts() -> tuple[list[str], list[str]]:
    """Training and held-out prompts: every product and place, split 3:1 with a fixed seed."""
    subjects = PRODUCTS + PLACES
    prompts = [f"Write a short review of the {s}." for s in subjects]
    random.Random(0).shuffle(prompts)
    cut = len(prompts) * 3 // 4
    return prompts[:cut], prompts[cut:]


def main() -> int:
    import torch

    from align.policy import load_policy
    from align.sft import SFTConfig, train_sft
    from reward.options import ModelOptions
    from reward.records import PreferenceRecord, write_jsonl
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    torch.manual_seed(0)
    out = Path("outputs/demo")
    train, held_out = review_prompts()
    rng = random.Random(0)
    records = []
    for p in train:
        x = p.removeprefix("Write a short review of the ").rstrip(".")
        for _ in range(3):
            records.append(PreferenceRecord(
                prompt=[{"role": "user", "content": p}],
                chosen=[{"role": "assistant", "content": rng.choice(WARM).format(x=x)}],
                rejected=[{"role": "assistant", "content": rng.choice(GRUMPY).format(x=x)}],
                margin=1.0, source="demo-templates"))
    data = out / "preferences.jsonl"
    write_jsonl(records, data)
    print(f"[1/4] wrote {len(records)} preference records for {len(train)} review prompts to {data}")

    vader = SentimentIntensityAnalyzer()

    def sample(model_name: str, adapter: str | None) -> list[str]:
        model, tok = load_policy(ModelOptions(model=model_name, lora=False), padding_side="left")
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        model.eval()
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in held_out]
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**batch, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
        return tok.batch_decode(gen[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)

    start = time.perf_counter()
    before = sample("builtin:smollm2-135m-instruct", None)
    print(f"[2/4] sampled the initial policy on {len(held_out)} held-out prompts ({time.perf_counter() - start:.0f} s)")

    start = time.perf_counter()
    config = SFTConfig(model="builtin:smollm2-135m-instruct", data=str(data), output_dir=str(out / "sft"),
                       max_steps=30, per_device_train_batch_size=8, learning_rate=3e-4, lora_r=16,
                       logging_steps=10, save_steps=1000, max_length=128)
    train_sft(config)
    print(f"[3/4] align sft: LoRA adapter trained for {config.max_steps} steps in "
          f"{time.perf_counter() - start:.0f} s, saved to {config.output_dir}")

    after = sample("builtin:smollm2-135m-instruct", config.output_dir)
    wins = 0.0
    for p, a, b in zip(held_out, after, before):
        sa, sb = vader.polarity_scores(a)["compound"], vader.polarity_scores(b)["compound"]
        wins += 1.0 if sa > sb else 0.5 if sa == sb else 0.0
    mean_before = sum(vader.polarity_scores(t)["compound"] for t in before) / len(before)
    mean_after = sum(vader.polarity_scores(t)["compound"] for t in after) / len(after)
    print(f"[4/4] judged by VADER sentiment on held-out prompts: mean {mean_before:+.3f} -> {mean_after:+.3f}")
    print(f"\nExample ({held_out[0]!r}):\n  before: {before[0].strip()[:160]}\n  after:  {after[0].strip()[:160]}")
    print("\nWhat this demo did: generated preference data, supervised fine-tuning with LoRA on its chosen side, "
          "and a before/after comparison judged by sentiment.\nNot yet part of it: the labeling app, reward "
          "models, DPO/PPO and the iterative loop (open issues 3-7).")
    print(f"demo: SFT policy vs initial policy, VADER-judged win rate {wins / len(held_out):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
