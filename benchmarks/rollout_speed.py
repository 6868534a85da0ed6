"""Rollout tokens/s of the policy *with its adapter*: HF `generate` (the baseline) against our engines,
same batch, prompts, length and sampling, in one process, alternating.

    python -m benchmarks.rollout_speed [--batch 8] [--tokens 64] [--repeat 5]

The policy is builtin SmolLM2-135M-Instruct with a LoRA adapter (r=16 on every linear, B drawn at
random so that the adapter changes the outputs, as a trained one does). Every row samples exactly
`--tokens` tokens (EOS ignored; `min_new_tokens` for HF) at temperature 1, top-p 1. Rows:
- `hf`: `model.generate` on the peft model in fp32, as TRL's trainers sample (the baseline, 1.0);
- `hf, adapter folded`: our `hf` engine (LoRA folded into the base while sampling), fp32;
- `fused`: our `fused` engine (snapshot with the adapter folded, fused projections, static cache), in
  the precision `foundation.precision` picks: bf16 on a CPU with AMX or AVX512-BF16, fp32 elsewhere.
Reports the CPU kind, the median tokens/s of each, the ratio to the baseline, and last `ratio X`
(fused / hf). To measure a CPU without native bf16 on one that has it:
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.rollout_speed` (torch's and
oneDNN's AVX2 kernels; the fused engine then samples in fp32).
"""

from __future__ import annotations

import argparse
import statistics
import time

MODEL = "builtin:smollm2-135m-instruct"


def policy_with_adapter():
    import torch

    from align.policy import Policy

    policy = Policy.from_pretrained(MODEL, lora=True, dtype="float32")
    torch.manual_seed(0)
    for name, param in policy.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    return policy


def prompt_ids(tokenizer, batch: int) -> list[list[int]]:
    from align.loop.prompts import review_prompts

    prompts = review_prompts()[0][:batch]
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=True,
                                          add_generation_prompt=True, return_dict=False) for p in prompts]


def hf_baseline(policy, prompts: list[list[int]], tokens: int):
    import torch

    from align.rollout.base import left_padded

    ids, mask = left_padded(prompts, policy.tokenizer.pad_token_id, "cpu")

    def run():
        with torch.no_grad():
            out = policy.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                                        top_k=0, top_p=1.0, max_new_tokens=tokens, min_new_tokens=tokens,
                                        pad_token_id=policy.tokenizer.pad_token_id)
        return int((out.shape[1] - ids.shape[1]) * len(prompts))
    return run


def engine(policy, name: str, prompts: list[list[int]], tokens: int):
    from align.rollout import SamplingParams, make_sampler

    sampler = make_sampler(name, policy.model, pad_id=policy.tokenizer.pad_token_id, eos=[],
                           batch_size=len(prompts))
    params = SamplingParams(temperature=1.0, max_new_tokens=tokens)

    def run():
        sampler.refresh()                 # as PPO does before each rollout: the snapshot is in the time
        return sum(len(c[0].token_ids) for c in sampler.sample(prompts, params))
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    policy = policy_with_adapter()
    prompts = prompt_ids(policy.tokenizer, args.batch)
    runs = {"hf": hf_baseline(policy, prompts, args.tokens),
            "hf, adapter folded": engine(policy, "hf", prompts, args.tokens),
            "fused": engine(policy, "fused", prompts, args.tokens)}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()                                                             # warm-up
    for _ in range(args.repeat):
        for name, run in runs.items():                                    # alternate: noise hits all
            start = time.perf_counter()
            n = run()
            rates[name].append(n / (time.perf_counter() - start))
    base = statistics.median(rates["hf"])
    from foundation.precision import cpu_kind, sampling_dtype

    print(f"SmolLM2-135M + LoRA r=16, batch {args.batch} x {args.tokens} sampled tokens, "
          f"median of {args.repeat}; CPU {cpu_kind()}, fused in {str(sampling_dtype()).split('.')[-1]}")
    print(f"{'engine':<22} {'tokens/s':>9} {'vs hf':>7}   (runs)")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<22} {median:9.1f} {median / base:7.2f}   ({', '.join(f'{v:.0f}' for v in values)})")
    print(f"ratio {statistics.median(rates['fused']) / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
