"""Can the KL guard decide from one sampling pass? The KL of a scaled adapter, estimated on the answers
sampled at scale 1, against a fresh measurement at that scale (what the guard does now).

    python -m benchmarks.kl_one_pass --adapter outputs/demo/round-1/dpo --scales 0.65,0.8,1.2

At scale 1 the trained policy answers the first `--prompts` training prompts of `builtin:reviews` once
(`--temperature`, as the loop's guard samples). For each scale α the adapter's `B` matrices are scaled and
KL(π_α ‖ π_0) per answer is measured three ways, each with the upper end of its 95% interval (what the
guard holds to the budget):

- fresh: new answers sampled from π_α, the exact per-token KL summed along them (the guard today);
- fixed: the exact per-token KL of π_α along the scale-1 answers (no new sampling; biased: the prefixes
  come from π_1, not π_α);
- weighted: the same with each position weighted by the likelihood ratio of its prefix under the two
  samplers, Π_s q_α(y_s) / q_1(y_s) at the sampling temperature (unbiased, but its variance grows with
  |α − 1|: the effective number of answers is printed).

Each line also gives the seconds of a fresh measurement and of one estimate (two teacher-forced forwards).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from align.evaluate import chat_prompt_ids, response_logits, sample_once, token_kl
from align.loop.guards import lora_b_matrices
from align.loop.prompts import split_prompts
from align.policy import Policy
from foundation.stats import mean_interval


def scaled(policy: Policy, scale: float, trained: dict) -> None:
    import torch

    with torch.no_grad():
        for name, p in lora_b_matrices(policy.model).items():
            p.copy_(trained[name] * scale)


def fresh_kl(policy, initial, prompts, sampling: dict) -> tuple[list[float], list[list[int]]]:
    answers = [g.token_ids for g in sample_once(policy, prompts, **sampling)]
    return token_kl(policy, initial, prompts, answers), answers


def sampled_logprob(logits, tokens, temperature: float):
    """Log-probability of each sampled token under the sampler (the logits at `temperature`)."""
    return (logits.float() / temperature).log_softmax(-1).gather(-1, tokens[:, None].to(logits.device))[:, 0]


def estimates(policy, initial, prompts, answers, sampler_logprobs, temperature: float):
    """Per answer: the fixed-answer KL, the prefix-weighted KL and the answer's final log-weight."""
    import torch

    ids = chat_prompt_ids(policy, prompts)
    fixed, weighted, final = [], [], []
    both = zip(response_logits(policy, ids, answers, 8), response_logits(initial, ids, answers, 8))
    for ((_, logits, tokens), (_, ref, _)), q1 in zip(both, sampler_logprobs):
        logp, ref_logp = logits.float().log_softmax(-1), ref.float().log_softmax(-1)
        kl_t = (logp.exp() * (logp - ref_logp)).sum(-1).clamp(min=0)
        qa = sampled_logprob(logits, tokens, temperature)
        log_w = torch.cat([torch.zeros(1), torch.cumsum(qa - q1, 0)[:-1]])
        fixed.append(float(kl_t.sum()))
        weighted.append(float((log_w.exp() * kl_t).sum()))
        final.append(float(log_w[-1]))
    return fixed, weighted, final


def sampler_logprobs(policy, prompts, answers, temperature: float) -> list:
    ids = chat_prompt_ids(policy, prompts)
    return [sampled_logprob(logits, tokens, temperature)
            for _, logits, tokens in response_logits(policy, ids, answers, 8)]


def summary(kls: list[float]) -> dict:
    return {"kl": round(statistics.fmean(kls), 2), "upper": round(mean_interval(kls)[1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="a trained LoRA adapter folder (a round's dpo/)")
    parser.add_argument("--base", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--scales", default="0.65,0.8,1.2")
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    import torch

    prompts = split_prompts("builtin:reviews", None)[0][: args.prompts]
    initial = Policy.from_pretrained(args.base)
    policy = Policy.from_pretrained(args.adapter)
    trained = {name: p.detach().clone() for name, p in lora_b_matrices(policy.model).items()}
    sampling = {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens, "seed": 1,
                "batch_size": args.prompts}
    start = time.perf_counter()
    kls, answers = fresh_kl(policy, initial, prompts, sampling)
    print(json.dumps({"scale": 1.0, "fresh": summary(kls), "seconds": round(time.perf_counter() - start)}),
          flush=True)
    q1 = sampler_logprobs(policy, prompts, answers, args.temperature)
    for scale in [float(s) for s in args.scales.split(",")]:
        scaled(policy, scale, trained)
        start = time.perf_counter()
        fixed, weighted, final = estimates(policy, initial, prompts, answers, q1, args.temperature)
        estimate_seconds = time.perf_counter() - start
        start = time.perf_counter()
        kls, _ = fresh_kl(policy, initial, prompts, sampling)
        w = torch.tensor(final).exp()
        print(json.dumps({"scale": scale, "fresh": summary(kls), "fixed": summary(fixed),
                          "weighted": summary(weighted),
                          "effective_answers": round(float(w.sum() ** 2 / (w ** 2).sum()), 1),
                          "fresh_seconds": round(time.perf_counter() - start),
                          "estimate_seconds": round(estimate_seconds, 1)}), flush=True)
        scaled(policy, 1.0, trained)


if __name__ == "__main__":
    main()
