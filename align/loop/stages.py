"""The six stages of a loop round, in the order they run, one function each over the loop (`Loop` in
`run.py`: its config, state, label store, labeling desk, judge and prompts).

    generate   the last kept policy samples candidates for the round's prompts
    select     pairs of them into the label store: at random, or by the last reward model's uncertainty
    label      simulated labelers (or people) label them at the app
    reward     the previous reward model is scored on the fresh labels, then a reward model is fit
    policy     DPO (or PPO) trains the policy, then the KL guard holds it to the budget
    evaluate   the labelers compare the new policy with the last kept one (and the initial one), blind;
               their win rate decides whether the round is kept

Each stage calls into the package that owns the work: sampling and training in `align`, the queue and
its labels in `labeling_app`, reward models and their pairs in `reward`.
"""

from __future__ import annotations

import random
import statistics
import sys
from itertools import zip_longest
from pathlib import Path

from align.dpo import train_dpo
from align.evaluate import evaluate_policy
from align.loop.evaluation import (
    EvaluationWatch,
    answers_per_prompt,
    comparison_pairs,
    read_sides,
    write_sides,
)
from align.loop.guards import held_upper, hold_to_kl_budget, made_worse, proxy_gold_disagreement
from align.loop.prompts import round_prompts
from align.loop.report import round_lineage
from align.ppo import train_ppo
from foundation.adapters import adapter_rank, stack_adapters
from foundation.candidates import Candidate, CandidateSet, read_candidates, write_candidates
from foundation.cards import Lineage, write_card
from foundation.readers import read_preferences
from foundation.records import write_jsonl
from labeling_app.export import aggregate
from labeling_app.quality import label_stats
from labeling_app.store import candidate_pairs
from reward.evaluate import evaluate_records
from reward.learnability import cross_fit_accuracy, pooled_accuracy
from reward.pairs import best_vs_worst
from reward.trainer import train_reward
from reward.uncertainty import pair_uncertainty

__all__ = ["generate", "select", "label", "reward", "policy", "evaluate", "STAGES", "TRAINING_STAGES"]


def generate(loop, r: int) -> None:
    """The last kept policy's `candidates_per_prompt` answers to each of the round's prompts; with
    `contrast: initial`, from round 2, every second one the initial policy's instead."""
    cfg = loop.config
    last = loop.state.kept(r - 1)
    prompts = round_prompts(loop.train_prompts, r, cfg.prompts_per_round, cfg.seed)
    n = cfg.candidates_per_prompt
    if cfg.contrast == "initial" and last > 0:
        ours = _sample(loop, last, prompts, n - n // 2, seed=cfg.seed + r)
        theirs = _sample(loop, 0, prompts, n // 2, seed=cfg.seed + r + 7919)
        answers = [[c for pair in zip_longest(a, b) for c in pair if c is not None]
                   for a, b in zip(ours, theirs)]
    else:
        answers = _sample(loop, last, prompts, n, seed=cfg.seed + r)
    sets = [CandidateSet(f"r{r}-p{i:04d}", p, cands) for i, (p, cands) in enumerate(zip(prompts, answers))]
    write_candidates(sets, loop.state.dir(r) / "candidates.jsonl")


def _sample(loop, k: int, prompts: list, n: int, seed: int) -> list[list[Candidate]]:
    """n candidates per prompt from the policy after round k, with their provenance."""
    gen = loop.config.generation
    policy = loop.load_policy(k)
    gens = policy.generate(prompts, n=n, temperature=gen.temperature, top_p=gen.top_p,
                           max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size,
                           seed=seed, progress=True)
    return [[Candidate(g.text, model=policy.name, adapter=policy.adapter, sampling=g.sampling,
                       logprobs=g.logprobs, finished=g.finished) for g in gs] for gs in gens]


def select(loop, r: int) -> None:
    """Choose the round's pairs: all at random in round 1; from round 2, the most uncertain for the last
    reward model, plus a random slice for comparison. Import them into the store, the uncertain ones
    with their uncertainty as queue priority."""
    cfg = loop.config
    rng = random.Random(cfg.seed * 7919 + r)
    pool = candidate_pairs(read_candidates(loop.state.dir(r) / "candidates.jsonl"), source=f"loop round {r}",
                           pairs_per_prompt=cfg.pairs_per_prompt or None)
    rng.shuffle(pool)
    n = min(cfg.pairs_per_round, len(pool))
    info: dict = {"pool": len(pool)}
    if r == 1 or cfg.random_share >= 1.0:
        chosen = {"random": pool[:n]}
    else:
        scores = pair_uncertainty(loop.reward_model(r - 1), [p["prompt"] for p in pool],
                                  [p["response_a"] for p in pool], [p["response_b"] for p in pool])
        for item, score in zip(pool, scores):
            item["priority"] = score
        n_random = round(n * cfg.random_share)
        ranked = sorted(range(len(pool)), key=lambda i: -scores[i])
        active = set(ranked[: n - n_random])
        # the pool is shuffled: its first pairs not chosen by uncertainty are a random slice
        random_slice = [i for i in range(len(pool)) if i not in active][:n_random]
        chosen = {"active": [pool[i] for i in ranked[: n - n_random]],
                  "random": [{**pool[i], "priority": 0.0} for i in random_slice]}
        info["uncertainty"] = {
            "active": statistics.fmean(scores[i] for i in active) if active else None,
            "random": statistics.fmean(scores[i] for i in random_slice) if random_slice else None}
    for slice_name, items in chosen.items():
        loop.store.add_pairs(items, batch=f"round-{r}/{slice_name}")
        info[slice_name] = len(items)
    loop.state.round(r)["select"] = info


def label(loop, r: int) -> None:
    """Simulated labelers (or people) label at the app until every pair of the round has k labels."""
    loop.desk.label((f"round-{r}/active", f"round-{r}/random"), what=f"align loop: round {r}", seed=r)
    stats = label_stats(loop.store)
    loop.state.round(r)["labels"] = {key: stats[key]
                                     for key in ("labels", "krippendorff_alpha", "pairwise_agreement")}


def records(loop, r: int | None = None, slice_name: str | None = None) -> list:
    """The training labels as preference records: every one so far, or round r's `slice_name` batch."""
    if r is None:
        return aggregate(loop.store)[0]
    return aggregate(loop.store, batch=f"round-{r}/{slice_name}")[0]


def reward(loop, r: int) -> None:
    """Accuracy of the previous reward model on this round's fresh labels (by slice), then refit on all
    labels."""
    data = loop.state.dir(r) / "preferences.jsonl"
    info = {}
    if loop.processes.is_main:
        if r > 1:
            info.update(_fresh_accuracy(loop, r))
        labels = records(loop)
        write_jsonl(labels, data)
        info["train_records"] = len(labels)
    loop.processes.barrier()                    # the data is written before anyone trains on it
    if loop.config.learnability_check:
        info["learnability"] = _learnability(loop, r, labels if loop.processes.is_main else [])
    config = loop.config.reward_config(data=str(data), output_dir=str(loop.state.dir(r) / "reward"))
    info["reward_model"] = loop.state.round(r)["reward_model"] = train_reward(config)
    loop.state.round(r)["reward"] = info


def _fresh_accuracy(loop, r: int) -> dict:
    """The previous round's reward model on round r's labels, which it was not trained on: per slice, and
    over both with its 95% interval."""
    rm, info, fresh = loop.reward_model(r - 1), {}, []
    for slice_name in ("active", "random"):
        recs = [x for x in records(loop, r, slice_name) if not x.tie]
        if recs:
            info[f"fresh_accuracy_{slice_name}"] = evaluate_records(rm, recs)["accuracy"]
            fresh += [(info[f"fresh_accuracy_{slice_name}"], len(recs))]
    if fresh:
        info["fresh_accuracy"] = pooled_accuracy(fresh)
    return info


def _learnability(loop, r: int, labels: list) -> dict:
    """Whether the labels so far can be learnt: two reward models, each fit on half the prompts' labels
    (the reward section's settings), scored on the other half (`reward.learnability`)."""
    return cross_fit_accuracy(labels, lambda data, out: loop.config.reward_config(data=data, output_dir=out),
                              loop.state.dir(r) / "learnability", seed=loop.config.seed + r,
                              processes=loop.processes)


def learnable(loop, r: int) -> bool:
    """Whether round r may use what extrapolates from its labels (the reward model's pairs, the guard's
    scaling up): its labels were found learnable, or no check ran."""
    return loop.state.round(r).get("reward", {}).get("learnability", {}).get("above_chance", True)


def policy(loop, r: int) -> None:
    """Train the round's policy (DPO on the labels, or PPO on the reward model), then hold it to the KL
    budget (rank 0; the others take its state). From round 2, as `round_start` says: a fresh adapter
    from the initial policy (retrain), one stacked on the last kept round's policy (stack), or that
    round's adapter trained further (continue)."""
    cfg, state = loop.config, loop.state
    start = state.kept(r - 1)
    how = cfg.round_start if start > 0 else "retrain"
    base = state.policy_path(start) if how != "retrain" else None
    if base:
        state.round(r)["start"] = {"round": start, "how": how}
    adapters = {"adapter": base if how == "continue" else None,
                "merge_adapter": base if how == "stack" else None}
    if cfg.method == "dpo":
        data = _dpo_data(loop, r, new_only=base is not None)
        out = train_dpo(cfg.dpo_config(data=str(data), output_dir=str(state.dir(r) / "dpo"), **adapters))
    else:
        config = cfg.ppo_config(reward_model=state.round(r)["reward_model"],
                                output_dir=str(state.dir(r) / "ppo"), **adapters)
        out = train_ppo(config, prompts=loop.train_prompts)
    if how == "stack" and loop.processes.is_main:
        # the round's policy: the last kept one's adapter and this round's, as one adapter on the base
        trained, out = out, str(stack_adapters([(base, 1.0), (out, 1.0)], state.dir(r) / "stacked"))
        write_card(out, Lineage(method=f"loop round {r} ({cfg.method.upper()}), before the KL guard: this "
                                       "round's adapter stacked on the last kept policy's",
                                base_model=cfg.policy.model, parent=base, data={"stacked": [base, trained]}))
    state.round(r)["policy"] = out
    if loop.processes.is_main:
        stacked = how == "stack"
        _hold_to_kl_budget(loop, r, anchor=start if stacked else 0, keep=base if stacked else None)


def _dpo_data(loop, r: int, new_only: bool) -> Path:
    """The round's DPO data: every human label so far (or, `new_only`, this round's), plus (`rm_pairs`) the
    reward model's best-vs-worst pair of every prompt's candidates (rounds 1 to r, or r alone)."""
    labels = loop.state.dir(r) / "preferences.jsonl"
    use_rm_pairs = loop.config.rm_pairs and learnable(loop, r)
    if not (use_rm_pairs or new_only):
        return labels
    data = loop.state.dir(r) / "dpo-data.jsonl"
    if loop.processes.is_main:
        human = ([x for s in ("active", "random") for x in records(loop, r, s)] if new_only
                 else read_preferences(labels).records)
        extra = reward_model_pairs(loop, r, first=r if new_only else 1) if use_rm_pairs else []
        write_jsonl(human + extra, data)
        if loop.config.rm_pairs:
            loop.state.round(r).setdefault("reward", {})["rm_pairs"] = len(extra)
    loop.processes.barrier()
    return data


def reward_model_pairs(loop, r: int, first: int = 1) -> list:
    """For every training prompt of rounds `first` to r, round r's reward model's best and worst candidate
    (`reward.pairs.best_vs_worst`, at `rm_pair_confidence`)."""
    sets = [s for k in range(first, r + 1) for s in read_candidates(loop.state.dir(k) / "candidates.jsonl")]
    return best_vs_worst(loop.reward_model(r), sets, min_confidence=loop.config.rm_pair_confidence,
                         source=f"loop round {r} reward model")


def _hold_to_kl_budget(loop, r: int, anchor: int = 0, keep: str | None = None) -> None:
    """Hold round r's policy within `kl_budget` of round `anchor`'s (0: the initial policy), scaling its
    adapter; of a stacked adapter, only the part above `keep` (the adapter it was stacked on)."""
    cfg, state = loop.config, loop.state
    info = hold_to_kl_budget(loop.load_policy(r), loop.load_policy(anchor),
                             loop.train_prompts[: cfg.kl_prompts], budget=cfg.kl_budget,
                             sampling=loop.eval_sampling(), out=state.dir(r) / "policy",
                             max_scale=cfg.max_adapter_scale if learnable(loop, r) else 1.0,
                             keep_rank=adapter_rank(keep) if keep else 0)
    if info["path"]:
        state.round(r)["policy"] = info.pop("path")
    state.round(r)["kl_guard"] = {**{k: v for k, v in info.items() if k != "path"}, "against": anchor}


def evaluate(loop, r: int) -> None:
    """The new policy against the last kept one (and the initial one) on the held-out prompts: the
    labelers' blind comparisons decide whether the round is kept; beside them the oracle judge (if any)
    and the reward model (proxy) win rates with intervals, and KL; flags over-optimisation."""
    new, rm = loop.load_policy(r), loop.reward_model(r)
    result, previous = {}, loop.state.kept(r - 1)
    against = {"previous": previous, "initial": 0} if previous else {"initial": 0}
    references = {}
    for name, k in against.items():
        reference = loop.load_policy(k)
        references[name] = (k, reference)
        # KL is held to the budget against the initial policy; against the previous one it is not used,
        # and would cost as much as the sampling
        report = evaluate_policy(new, reference, loop.heldout, reward_model=rm, judge=loop.judge,
                                 policy_samples=loop.heldout_samples(r, new),
                                 reference_samples=loop.heldout_samples(k, reference),
                                 kl=name == "initial", **loop.eval_sampling())
        result[name] = _summary(report, k)
    for name, labelers in _labelers_compare(loop, r, new, references).items():
        result[name]["labelers"] = labelers
    state = loop.state.round(r)
    state["evaluation"] = result
    state["warnings"] = [w for w in [proxy_gold_disagreement(result["initial"])] if w]
    guard = state.get("kl_guard", {})
    if guard and held_upper(guard) > guard["budget"]:
        state["warnings"].append(f"the policy's KL {guard['kl']:.2f} (95% upper {held_upper(guard):.2f}) is "
                                 f"over the budget {guard['budget']:g} and has no LoRA adapter to shrink "
                                 f"(policy.lora: false)")
    compared = result.get("previous", result["initial"])
    state["kept"] = not made_worse(compared)
    if not state["kept"]:
        low, high = compared["labelers"]["interval"]
        then = ("; kept anyway (keep_worse_rounds)" if loop.config.keep_worse_rounds
                else f"; the next round starts from round {compared['round']}'s")
        state["warnings"].append(f"the labelers find this round's policy worse than round "
                                 f"{compared['round']}'s ({compared['labelers']['win_rate']:.2f} "
                                 f"[{low:.2f}, {high:.2f}] over "
                                 f"{compared['labelers']['labels']} labels)" + then)
    for warning in state["warnings"]:
        print(f"align loop: WARNING (round {r}): {warning}", file=sys.stderr, flush=True)
    start = state.get("start")
    parent = loop.state.policy_path(start["round"]) if start else None
    write_card(state["policy"], round_lineage(r, state, loop.config, loop.url, parent=parent))


def _labelers_compare(loop, r: int, new, references: dict[str, tuple]) -> dict:
    """Blind comparisons in the store (one evaluation batch per reference round), labelled at the app by
    the simulated labelers or by people, each stopped as soon as its anytime-valid interval leaves ½ or
    at `eval_labels`: the labelers' win rate of the new policy against each reference. The pairs come
    one held-out answer per prompt at a time; a further answer is sampled only for a comparison that has
    used up the pairs it has and is still undecided."""
    cfg = loop.config
    watches = {name: EvaluationWatch(loop.store, f"round-{r}/eval-{name}", {}, cfg.eval_labels)
               for name in references}
    for answer in range(answers_per_prompt(cfg.eval_labels, loop.store.k, len(loop.heldout))):
        undecided = {name: w for name, w in watches.items() if not w.poll()}
        if not undecided:
            break
        for name, w in undecided.items():
            k, reference = references[name]
            w.sides.update(_comparison(loop, r, name, answer, loop.heldout_samples(r, new, answer),
                                       loop.heldout_samples(k, reference, answer)))
        loop.desk.compare(undecided, what=f"align loop: round {r}", most=loop.config.eval_labels,
                          seed=1000 + r, publish=lambda: loop.publish(r, "evaluate", watches))
    for w in watches.values():
        w.finish()
    return {name: w.result() for name, w in watches.items()}


def _comparison(loop, r: int, name: str, answer: int, new: list, old: list) -> dict[str, str]:
    """The pairs of one answer per held-out prompt, new policy against the reference, into the round's
    evaluation batch (once: a resumed round finds them in the log); the new policy's stored side of each."""
    log, batch = loop.state.dir(r) / "evaluation-pairs.jsonl", f"round-{r}/eval-{name}"
    sides = read_sides(log, batch, answer)
    if sides:
        return sides
    items, sides = comparison_pairs(loop.heldout, [[g.text for g in new]], [[g.text for g in old]],
                                    seed=loop.config.seed * 31 + r * 7 + answer * 3 + len(name),
                                    source=f"loop round {r} evaluation")
    loop.store.add_pairs(items, batch=batch, purpose="evaluation")
    in_batch = {p.pair_id for p in loop.store.pairs(batch=batch)}    # a pair seen before stays in its
    sides = {pid: side for pid, side in sides.items() if pid in in_batch}    # own batch
    write_sides(log, batch, answer, sides)
    return sides


def _summary(report: dict, against: int) -> dict:
    """What the loop keeps of an `evaluate_policy` report against the policy of round `against` (the
    labelers' comparison is added beside it)."""
    judge, rm = report.get("judge"), report["reward"]
    oracle = {"judge_win_rate": judge["win_rate"], "judge_interval": judge["interval"],
              "judge_wins_ties_losses": [judge["wins"], judge["ties"], judge["losses"]]} if judge else {}
    return {"round": against, "prompts": report["prompts"], **oracle,
            "reward_win_rate": rm["win_rate"], "reward_interval": rm["interval"],
            "reward_expected_win_rate": rm["expected"]["win_rate"],
            "reward_expected_interval": rm["expected"]["interval"],
            "reward_policy": rm["policy_mean"], "reward_reference": rm["reference_mean"],
            "kl": report["kl"], "kl_interval": report["kl_interval"],
            "length": report["length"]["policy_tokens"],
            "example": report["examples"][0] if report.get("examples") else None}


STAGES = {"generate": generate, "select": select, "label": label, "reward": reward, "policy": policy,
          "evaluate": evaluate}
# Under `accelerate launch` every process trains (these stages); rank 0 alone samples, serves the app,
# owns the store, evaluates and writes the state and the report, while the others wait for it.
TRAINING_STAGES = ("reward", "policy")
