"""Honest policy evaluation on held-out prompts: win rate over a reference (by reward model and/or a
judge, ties counted half) with its 95% Wilson interval, mean reward, KL(policy ‖ reference) per
response (exact per-token KL over the vocabulary, never negative) with its interval, response length.

`align evaluate --policy P --reference R --prompts FILE [--reward-model DIR] [--judge vader|mod:fn]`
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Sequence

from align.policy import Generation, Policy
from foundation.errors import DataError
from foundation.records import Message
from foundation.stats import mean_interval, sigmoid, wilson_interval
from reward.model import prompt_response_ids, right_pad

__all__ = ["sequence_logprobs", "token_kl", "evaluate_policy", "sample_once", "judge_scores",
           "win_rate_from_judge", "plot_report", "chat_prompt_ids", "response_logits"]


def chat_prompt_ids(policy: Policy, prompts: Sequence[Sequence[Message]],
                    max_prompt_tokens: int | None = None) -> list:
    """Each prompt as the policy's chat template gives it, with the generation prompt (the last
    `max_prompt_tokens` tokens where given)."""
    tok = policy.tokenizer
    ids = [tok(tok.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True),
               add_special_tokens=False)["input_ids"] for p in prompts]
    return [p[-max_prompt_tokens:] for p in ids] if max_prompt_tokens else ids


def response_logits(policy: Policy, prompt_ids: list, responses: Sequence[list[int]], batch_size: int):
    """Yield (row index, logits (T, V) that predict response row's T tokens, its token ids (T,)),
    teacher-forced, in batches with right padding (positions stay those of the unpadded row)."""
    import torch

    was_training = policy.model.training
    policy.model.eval()
    try:
        for start in range(0, len(prompt_ids), batch_size):
            rows = list(zip(prompt_ids[start: start + batch_size], responses[start: start + batch_size]))
            ids, mask = right_pad([p + list(r) for p, r in rows], policy.tokenizer.pad_token_id)
            # the vocabulary projection only where a response token is predicted, not over the prompts
            first = min(len(p) for p, _ in rows) - 1
            with torch.no_grad():
                logits = policy.model(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device),
                                      logits_to_keep=torch.arange(first, ids.shape[1] - 1)).logits
            for i, (p, r) in enumerate(rows):
                yield (start + i, logits[i, len(p) - 1 - first: len(p) - 1 - first + len(r)].float(),
                       ids[i, len(p): len(p) + len(r)])
    finally:
        policy.model.train(was_training)


def sequence_logprobs(policy: Policy, prompts: Sequence[Sequence[Message]], responses: Sequence[list[int]],
                      batch_size: int = 8, max_prompt_tokens: int | None = None) -> list[float]:
    """Σ_t log π(y_t | x, y_<t) for each response given as token ids, teacher-forced (temperature 1).
    `max_prompt_tokens` keeps only the end of long prompts (the turns nearest the response)."""
    out = []
    for _, logits, tokens in response_logits(policy, chat_prompt_ids(policy, prompts, max_prompt_tokens),
                                              responses, batch_size):
        out.append(logits.log_softmax(-1).gather(-1, tokens[:, None].to(logits.device)).sum().item())
    return out


def token_kl(policy: Policy, reference: Policy, prompts: Sequence[Sequence[Message]],
             responses: Sequence[list[int]], batch_size: int = 8) -> list[float]:
    """KL(π ‖ π_ref) of each response, Σ_t Σ_v π(v | x, y_<t) [log π(v | ·) − log π_ref(v | ·)] along the
    policy's own sampled tokens y: the exact per-token KL over the whole vocabulary, summed over the
    response. Each term is a KL, so the sum is never negative (the sample estimate log π(y) − log π_ref(y)
    can be, on few prompts), and its variance is far lower. Both models must share a vocabulary."""
    prompt_ids = chat_prompt_ids(policy, prompts, None)
    out = []
    # The two passes advance together, a batch at a time: never more than one batch of (T, V) logits each.
    for (_, logits, _), (_, ref, _) in zip(response_logits(policy, prompt_ids, responses, batch_size),
                                           response_logits(reference, prompt_ids, responses, batch_size)):
        logp, ref_logp = logits.log_softmax(-1), ref.to(logits.device).log_softmax(-1)
        out.append(float((logp.exp() * (logp - ref_logp)).sum().clamp(min=0.0)))
    return out


def _win_rate(scores: list[float]) -> dict:
    """Win rate over n prompts (ties count half) with its 95% Wilson interval."""
    rate = statistics.fmean(scores)
    return {"win_rate": rate, "interval": list(wilson_interval(rate, len(scores))), "n": len(scores),
            "wins": scores.count(1.0), "ties": scores.count(0.5), "losses": scores.count(0.0)}


def judge_scores(judge, prompts, policy_texts, reference_texts, seed: int = 0) -> list[float]:
    """Per prompt: 1 when the judge prefers the policy's response, 0 the reference's, ½ for a tie or
    "both bad". The judge sees each pair in a random order (position bias cancels out)."""
    rng = random.Random(seed)
    scores = []
    for prompt, p, r in zip(prompts, policy_texts, reference_texts):
        policy_first = rng.random() < 0.5
        a, b = (p, r) if policy_first else (r, p)
        choice, _strength = judge(prompt, a, b)
        if choice in ("tie", "both_bad"):
            scores.append(0.5)
        elif choice in ("A", "B"):
            scores.append(1.0 if (choice == "A") == policy_first else 0.0)
        else:
            raise DataError(f"a judge must return 'A', 'B', 'tie' or 'both_bad', got {choice!r}; "
                            f"fix the judge function.")
    return scores


def win_rate_from_judge(judge, prompts, policy_texts, reference_texts, seed: int = 0) -> dict:
    """The judge's win rate of the policy over the reference, with its interval (`judge_scores`)."""
    return _win_rate(judge_scores(judge, prompts, policy_texts, reference_texts, seed=seed))


def sample_once(policy: Policy, prompts, *, temperature: float = 0.7, max_new_tokens: int = 96, seed: int = 0,
                batch_size: int = 64) -> list[Generation]:
    """One response per prompt: what `evaluate_policy` judges (pass it back as `policy_samples` or
    `reference_samples` to judge the same answers against another policy)."""
    return [g[0] for g in policy.generate(prompts, temperature=temperature, seed=seed,
                                          max_new_tokens=max_new_tokens, batch_size=batch_size)]


def evaluate_policy(policy: Policy, reference: Policy, prompts: Sequence[Sequence[Message]], *,
                    reward_model=None, judge=None, temperature: float = 0.7, max_new_tokens: int = 96,
                    seed: int = 0, batch_size: int = 64, policy_samples: list[Generation] | None = None,
                    reference_samples: list[Generation] | None = None, kl: bool = True) -> dict:
    """Win rates of `policy` over `reference` on `prompts` (judge and/or reward model, each with its 95%
    interval), KL(policy ‖ reference) per response with its interval (unless `kl` is False), and lengths.
    Samples given as `policy_samples` / `reference_samples` are judged instead of new ones (made once,
    reused)."""
    sampling = dict(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    policy_gen = policy_samples or sample_once(policy, prompts, **sampling)
    reference_gen = reference_samples or sample_once(reference, prompts, **sampling)
    p_text, r_text = [g.text for g in policy_gen], [g.text for g in reference_gen]
    report: dict = {
        "prompts": len(prompts),
        "sampling": {"temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed},
        "length": {"policy_tokens": statistics.fmean(len(g.token_ids) for g in policy_gen),
                   "reference_tokens": statistics.fmean(len(g.token_ids) for g in reference_gen),
                   "policy_chars": statistics.fmean(len(t) for t in p_text),
                   "reference_chars": statistics.fmean(len(t) for t in r_text),
                   "policy_finished": statistics.fmean(bool(g.finished) for g in policy_gen)},
        "kl": None, "kl_interval": None,   # different vocabularies: token-level KL is undefined
    }
    if kl and _same_vocabulary(policy.tokenizer, reference.tokenizer):
        kls = token_kl(policy, reference, prompts, [g.token_ids for g in policy_gen], batch_size=8)
        report["kl"], report["kl_interval"] = statistics.fmean(kls), list(mean_interval(kls))
    if reward_model is not None:
        rp = reward_model.score(list(prompts), p_text)
        rr = reward_model.score(list(prompts), r_text)
        # The share of labels the reward model's Bradley-Terry odds predict for the policy: what it expects
        # of labelers as noisy as those it learnt from (its win rate counts every margin as sure).
        odds = [sigmoid(a - b) for a, b in zip(rp, rr)]
        report["reward"] = {"policy_mean": statistics.fmean(rp), "reference_mean": statistics.fmean(rr),
                            **_win_rate([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(rp, rr)]),
                            "expected": {"win_rate": statistics.fmean(odds),
                                         "interval": list(mean_interval(odds))}}
    if judge is not None:
        report["judge"] = win_rate_from_judge(judge, prompts, p_text, r_text, seed=seed)
    report["examples"] = [{"prompt": list(p)[-1]["content"], "policy": a, "reference": b}
                          for p, a, b in list(zip(prompts, p_text, r_text))[:5]]
    return report


def _same_vocabulary(a, b) -> bool:
    return len(a) == len(b) and a.eos_token_id == b.eos_token_id \
        and a.convert_ids_to_tokens(list(range(min(50, len(a))))) \
        == b.convert_ids_to_tokens(list(range(min(50, len(b)))))


def plot_report(report: dict, path: str | Path) -> str:
    """Win rates (judge, reward model) and mean response lengths, side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=110)
    names, rates = [], []
    for key, label in (("judge", "judge"), ("reward", "reward model")):
        if key in report:
            names.append(label)
            rates.append(report[key]["win_rate"])
    ax1.bar(names or ["(none)"], rates or [0], color="C0")
    ax1.axhline(0.5, ls="--", color="grey")
    ax1.set(ylim=(0, 1), ylabel="win rate over reference", title="policy vs reference")
    length = report["length"]
    ax2.bar(["policy", "reference"], [length["policy_tokens"], length["reference_tokens"]],
            color=["C0", "C7"])
    ax2.set(ylabel="mean response tokens",
            title=f"KL {report['kl']:.2f} nats" if report.get("kl") is not None else "length")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def write_report(report: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["plot"] = plot_report(report, out / "evaluation.png")
    (out / "evaluation.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return out / "evaluation.json"


def implicit_reward_accuracy(policy: Policy, records, beta: float = 0.1, max_response_tokens: int = 128,
                             max_prompt_tokens: int = 256) -> dict:
    """DPO's implicit reward r(x, y) = β [log π(y|x) − log π_ref(y|x)] (Rafailov et al. 2023, Eq. 5), with
    π_ref the base (adapter disabled): the share of held-out non-tie pairs where r(chosen) > r(rejected)."""
    records = [r for r in records if not r.tie]
    prompts = [r.prompt for r in records] * 2
    tok = policy.tokenizer
    ids = [prompt_response_ids(tok, r.prompt, r.chosen)[1][:max_response_tokens] for r in records] + \
          [prompt_response_ids(tok, r.prompt, r.rejected)[1][:max_response_tokens] for r in records]
    lp = sequence_logprobs(policy, prompts, ids, max_prompt_tokens=max_prompt_tokens)
    with policy.model.disable_adapter():
        lr = sequence_logprobs(policy, prompts, ids, max_prompt_tokens=max_prompt_tokens)
    n = len(records)
    rewards = [beta * (a - b) for a, b in zip(lp, lr)]
    margins = [rewards[i] - rewards[n + i] for i in range(n)]
    return {"pairs": n, "accuracy": statistics.fmean(m > 0 for m in margins),
            "mean_margin": statistics.fmean(margins)}
