"""`align loop`: the whole loop, in rounds (as Anthropic, InstructGPT and Llama 2 trained).

Each round: the current policy samples candidates → pairs go into the LabelStore (from round 2 on,
a `random_share` of them at random, the rest by reward-model uncertainty) → labels arrive through
the labeling app's own API, from simulated labelers (any judge) or from people at the printed URL →
the reward model is refit on every label so far → the policy is improved (DPO on the labels and on
the reward model's best-vs-worst pair of each prompt's candidates, or PPO on the reward model) →
evaluation: the labelers compare the new policy's held-out answers with the last kept policy's (and
the initial one's), blind, in the same app (`align.loop.evaluation`); their win rate decides whether
the round is kept. A configured judge gives its own figure beside theirs (an oracle, for benchmarks).

The app is served from the first stage that needs it to the end of the run, so labelers find it at the
same URL between stages. Every stage of every round is recorded in `loop_state.json` when it ends, so
an interrupted loop resumes at the stage where it stopped. The report (`report.md`, `report.html`, PNG
plots) is rewritten after each round; the last line printed holds the final labelers' win rate, then
the oracle judge's.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from align.loop.config import LoopConfig
from align.loop.labeling import LabelingDesk, LabelingStopped, open_store
from align.loop.report import describe_stage, write_report
from align.loop.trackers import RoundTracker, round_metrics
from foundation.records import as_chat

__all__ = ["Loop", "run_loop", "split_prompts", "STAGES", "LabelingStopped"]

STAGES = ("generate", "select", "label", "reward", "policy", "evaluate")
# Under `accelerate launch` every process trains (these stages); rank 0 alone samples, serves the app,
# owns the store, evaluates and writes the state and the report, while the others wait for it.
TRAINING_STAGES = ("reward", "policy")


def _prompts(spec: str | None, held_out: bool, first_turn: bool = False) -> list:
    if spec in (None, "builtin:reviews"):
        from align.loop.prompts import review_prompts

        train, heldout = review_prompts()
        return heldout if held_out else train
    from foundation.candidates import read_prompts

    return read_prompts(spec, first_turn=first_turn)


def split_prompts(prompts: str | None, heldout_prompts: str | None, *, first_turn: bool = False,
                  max_heldout: int = 0) -> tuple[list, list]:
    """(training prompts, held-out prompts) as chats: `heldout_prompts` if given (builtin:reviews has
    its own held-out subjects), else the last third of `prompts`; at most `max_heldout` held-out ones (0:
    all), the first. `first_turn`: each conversation's first user turn alone."""
    train = [as_chat(p) for p in _prompts(prompts, held_out=False, first_turn=first_turn)]
    heldout = heldout_prompts or ("builtin:reviews" if prompts in (None, "builtin:reviews") else None)
    if heldout:
        held = [as_chat(p) for p in _prompts(heldout, held_out=True, first_turn=first_turn)]
    else:
        cut = len(train) * 2 // 3          # no held-out set given: keep a third of the prompts apart
        train, held = train[:cut], train[cut:]
    return train, held[:max_heldout] if max_heldout else held


class Loop:
    """The loop's state (`loop_state.json`) and its stages, one method each, run in `STAGES` order."""

    def __init__(self, config: LoopConfig):
        from align.distributed import Processes
        from align.judges import load_judge

        self.config = config
        self.processes = Processes()
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.url = config.store or f"sqlite:///{self.out.resolve()}/labels.db"
        self.store = open_store(config, self.url) if self.processes.is_main else None
        self.desk = LabelingDesk(config, self.store)
        self.judge = None if config.judge == "none" else load_judge(config.judge)
        self.train_prompts, self.heldout = split_prompts(config.prompts, config.heldout_prompts,
                                                         first_turn=config.prompt_turns == "first",
                                                         max_heldout=config.max_heldout)
        self.state_path = self.out / "loop_state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {"rounds": {}}
        if self.processes.is_main and self.state.get("config") and self.state["config"] != asdict(config):
            changed = sorted(k for k, v in asdict(config).items() if self.state["config"].get(k) != v)
            print(f"align loop: resuming {self.out} with changed settings: {', '.join(changed)}")
        self.state["config"] = asdict(config)

    # -- state ------------------------------------------------------------------------------------

    def _round(self, r: int) -> dict:
        return self.state["rounds"].setdefault(str(r), {"done": []})

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_path)    # atomic: a kill never leaves half a state file

    def _dir(self, r: int) -> Path:
        d = self.out / f"round-{r}"
        d.mkdir(exist_ok=True)
        return d

    def policy_path(self, r: int) -> str:
        """The policy after round r (round 0: the initial model)."""
        return self.config.policy.model if r == 0 else self._round(r)["policy"]

    def kept(self, r: int) -> int:
        """The last round up to r whose policy was kept (0: the initial policy): a round that the labelers
        found worse than the last kept one is passed over (`keep_worse_rounds`)."""
        while r > 0 and self._round(r).get("kept") is False and not self.config.keep_worse_rounds:
            r -= 1
        return r

    def _load_policy(self, r: int):
        """The policy after round r, for sampling, quantized as it trains (`policy.quantization`)."""
        from align.policy import Policy

        options = self.config.policy
        return Policy.from_pretrained(self.policy_path(r), quantization=options.quantization,
                                      dtype=options.dtype, engine=self.config.generation.engine)

    def _eval_sampling(self) -> dict:
        gen = self.config.generation
        return {"temperature": gen.eval_temperature, "max_new_tokens": gen.max_new_tokens, "seed": 1,
                "batch_size": gen.batch_size}

    def _reward_model(self, r: int):
        from reward.ensemble import load_scorer

        return load_scorer(self._round(r)["reward_model"])

    def round_prompts(self, r: int) -> list:
        """Round r's training prompts: `prompts_per_round` of them, the next ones in a seeded order of
        all training prompts, so that each round asks new ones while they last (all: every round)."""
        n = self.config.prompts_per_round
        if not n or n >= len(self.train_prompts):
            return self.train_prompts
        order = list(range(len(self.train_prompts)))
        random.Random(self.config.seed * 104_729 + 1).shuffle(order)
        return [self.train_prompts[order[((r - 1) * n + i) % len(order)]] for i in range(n)]

    # -- stages -----------------------------------------------------------------------------------

    def generate(self, r: int) -> None:
        from foundation.candidates import Candidate, CandidateSet, write_candidates

        cfg, gen = self.config, self.config.generation
        policy = self._load_policy(self.kept(r - 1))
        prompts = self.round_prompts(r)
        gens = policy.generate(prompts, n=cfg.candidates_per_prompt, temperature=gen.temperature,
                               top_p=gen.top_p, max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size,
                               seed=cfg.seed + r, progress=True)
        sets = [CandidateSet(f"r{r}-p{i:04d}", p, [
                    Candidate(g.text, model=policy.name, adapter=policy.adapter, sampling=g.sampling,
                              logprobs=g.logprobs, finished=g.finished) for g in gs])
                for i, (p, gs) in enumerate(zip(prompts, gens))]
        write_candidates(sets, self._dir(r) / "candidates.jsonl")

    def select(self, r: int) -> None:
        """Choose the round's pairs: all at random in round 1; from round 2, the most uncertain for
        the last reward model, plus a random slice for comparison. Import them into the store, the
        uncertain ones with their uncertainty as queue priority."""
        from foundation.candidates import read_candidates
        from labeling_app.store import candidate_pairs
        from reward.uncertainty import pair_uncertainty

        cfg = self.config
        rng = random.Random(cfg.seed * 7919 + r)
        pool = candidate_pairs(read_candidates(self._dir(r) / "candidates.jsonl"), source=f"loop round {r}",
                               pairs_per_prompt=cfg.pairs_per_prompt or None)
        rng.shuffle(pool)
        n = min(cfg.pairs_per_round, len(pool))
        info: dict = {"pool": len(pool)}
        if r == 1 or cfg.random_share >= 1.0:
            chosen = {"random": pool[:n]}
        else:
            scores = pair_uncertainty(self._reward_model(r - 1), [p["prompt"] for p in pool],
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
            self.store.add_pairs(items, batch=f"round-{r}/{slice_name}")
            info[slice_name] = len(items)
        self._round(r)["select"] = info

    def label(self, r: int) -> None:
        """Simulated labelers (or people) label at the app until every pair of the round has k labels."""
        from labeling_app.quality import label_stats

        self.desk.label(r, (f"round-{r}/active", f"round-{r}/random"))
        stats = label_stats(self.store)
        self._round(r)["labels"] = {key: stats[key]
                                    for key in ("labels", "krippendorff_alpha", "pairwise_agreement")}

    def _records(self, r: int | None = None, slice_name: str | None = None):
        from labeling_app.export import aggregate

        if r is None:
            return aggregate(self.store)[0]
        return aggregate(self.store, batch=f"round-{r}/{slice_name}")[0]

    def reward(self, r: int) -> None:
        """Accuracy of the previous reward model on this round's fresh labels (by slice), then refit on
        all labels."""
        from foundation.records import write_jsonl
        from reward.trainer import train_reward

        data = self._dir(r) / "preferences.jsonl"
        info = {}
        if self.processes.is_main:
            if r > 1:
                from foundation.stats import wilson_interval
                from reward.evaluate import evaluate_records

                rm = self._reward_model(r - 1)
                fresh = []
                for slice_name in ("active", "random"):
                    recs = [x for x in self._records(r, slice_name) if not x.tie]
                    if recs:
                        info[f"fresh_accuracy_{slice_name}"] = evaluate_records(rm, recs)["accuracy"]
                        fresh += [(info[f"fresh_accuracy_{slice_name}"], len(recs))]
                if fresh:   # the previous RM on labels it was not trained on: this round's
                    n = sum(k for _, k in fresh)
                    accuracy = sum(a * k for a, k in fresh) / n
                    info["fresh_accuracy"] = {"accuracy": accuracy, "n": n,
                                              "interval": list(wilson_interval(accuracy, n))}
            records = self._records()
            write_jsonl(records, data)
            info["train_records"] = len(records)
        self.processes.barrier()                    # the data is written before anyone trains on it
        config = self.config.reward_config(data=str(data), output_dir=str(self._dir(r) / "reward"))
        info["reward_model"] = self._round(r)["reward_model"] = train_reward(config)
        self._round(r)["reward"] = info

    def policy(self, r: int) -> None:
        """Train the round's policy (DPO on the labels, or PPO on the reward model), then hold it to the
        KL budget (rank 0; the others take its state). From round 2, as `round_start` says: a fresh
        adapter from the initial policy (retrain), one stacked on the last kept round's policy (stack),
        or that round's adapter trained further (continue)."""
        start = self.kept(r - 1)
        how = self.config.round_start if start > 0 else "retrain"
        base = self.policy_path(start) if how != "retrain" else None
        if base:
            self._round(r)["start"] = {"round": start, "how": how}
        adapters = {"adapter": base if how == "continue" else None,
                    "merge_adapter": base if how == "stack" else None}
        if self.config.method == "dpo":
            from align.dpo import train_dpo

            data = self._dpo_data(r, new_only=base is not None)
            out = train_dpo(self.config.dpo_config(data=str(data), output_dir=str(self._dir(r) / "dpo"),
                                                   **adapters))
        else:
            from align.ppo import train_ppo

            config = self.config.ppo_config(reward_model=self._round(r)["reward_model"],
                                            output_dir=str(self._dir(r) / "ppo"), **adapters)
            out = train_ppo(config, prompts=self.train_prompts)
        if how == "stack" and self.processes.is_main:
            from foundation.adapters import stack_adapters
            from foundation.cards import Lineage, write_card

            # the round's policy: the last kept one's adapter and this round's, as one adapter on the base
            trained, out = out, str(stack_adapters([(base, 1.0), (out, 1.0)], self._dir(r) / "stacked"))
            write_card(out, Lineage(method=f"loop round {r} ({self.config.method.upper()}), before the KL "
                                           "guard: this round's adapter stacked on the last kept policy's",
                                    base_model=self.config.policy.model, parent=base,
                                    data={"stacked": [base, trained]}))
        self._round(r)["policy"] = out
        if self.processes.is_main:
            self._hold_to_kl_budget(r, anchor=start if how == "stack" else 0,
                                    keep=base if how == "stack" else None)

    def _dpo_data(self, r: int, new_only: bool) -> Path:
        """The round's DPO data: every human label so far (or, `new_only`, this round's), plus (`rm_pairs`)
        the reward model's own pairs."""
        labels = self._dir(r) / "preferences.jsonl"
        if not (self.config.rm_pairs or new_only):
            return labels
        data = self._dir(r) / "dpo-data.jsonl"
        if self.processes.is_main:
            from foundation.readers import read_preferences
            from foundation.records import write_jsonl

            records = ([x for s in ("active", "random") for x in self._records(r, s)] if new_only
                       else read_preferences(labels).records)
            extra = self._reward_model_pairs(r, first=r if new_only else 1) if self.config.rm_pairs else []
            write_jsonl(records + extra, data)
            if self.config.rm_pairs:
                self._round(r).setdefault("reward", {})["rm_pairs"] = len(extra)
        self.processes.barrier()
        return data

    def _reward_model_pairs(self, r: int, first: int = 1) -> list:
        """For every training prompt of rounds `first` to r, the round's reward model's best and worst
        candidate (`reward.pairs.best_vs_worst`, at `rm_pair_confidence`)."""
        from foundation.candidates import read_candidates
        from reward.pairs import best_vs_worst

        sets = [s for k in range(first, r + 1) for s in read_candidates(self._dir(k) / "candidates.jsonl")]
        return best_vs_worst(self._reward_model(r), sets, min_confidence=self.config.rm_pair_confidence,
                             source=f"loop round {r} reward model")

    def _hold_to_kl_budget(self, r: int, anchor: int = 0, keep: str | None = None) -> None:
        """Hold round r's policy within `kl_budget` of round `anchor`'s (0: the initial policy), scaling
        its adapter; of a stacked adapter, only the part above `keep` (the adapter it was stacked on)."""
        from align.loop.guards import hold_to_kl_budget
        from foundation.adapters import adapter_rank

        cfg = self.config
        info = hold_to_kl_budget(self._load_policy(r), self._load_policy(anchor),
                                 self.train_prompts[: cfg.kl_prompts], budget=cfg.kl_budget,
                                 sampling=self._eval_sampling(), out=self._dir(r) / "policy",
                                 max_scale=cfg.max_adapter_scale, keep_rank=adapter_rank(keep) if keep else 0)
        if info["path"]:
            self._round(r)["policy"] = info.pop("path")
        self._round(r)["kl_guard"] = {**{k: v for k, v in info.items() if k != "path"}, "against": anchor}

    def _heldout_samples(self, r: int, policy=None, answer: int = 0) -> list:
        """The `answer`-th held-out answers (one per prompt) of the policy after round r (0: the initial
        policy), sampled once and kept in a file, so that every round compares the same initial and
        previous answers."""
        from align.evaluate import sample_once
        from align.policy import Generation

        name = "heldout-samples.jsonl" if answer == 0 else f"heldout-samples-{answer}.jsonl"
        path = (self.out if r == 0 else self._dir(r)) / name
        if path.exists():
            kept = [Generation(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
            if len(kept) == len(self.heldout):           # else the held-out prompts changed: sample anew
                return kept
        samples = sample_once(policy or self._load_policy(r), self.heldout,
                              **{**self._eval_sampling(), "seed": 1 + answer})
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(asdict(g), ensure_ascii=False) + "\n" for g in samples),
                       encoding="utf-8")
        tmp.replace(path)
        return samples

    def evaluate(self, r: int) -> None:
        """The new policy against the last kept one (and the initial one) on the held-out prompts: the
        labelers' blind comparisons decide whether the round is kept; beside them the oracle judge (if
        any) and the reward model (proxy) win rates with intervals, and KL; flags over-optimisation."""
        from align.evaluate import evaluate_policy
        from align.loop.guards import held_upper, made_worse, proxy_gold_disagreement

        new = self._load_policy(r)
        rm = self._reward_model(r)
        result, previous = {}, self.kept(r - 1)
        against = {"previous": previous, "initial": 0} if previous else {"initial": 0}
        references = {}
        for name, k in against.items():
            reference = self._load_policy(k)
            references[name] = (k, reference)
            # KL is held to the budget against the initial policy; against the previous one it is not
            # used, and would cost as much as the sampling
            report = evaluate_policy(new, reference, self.heldout, reward_model=rm, judge=self.judge,
                                     policy_samples=self._heldout_samples(r, new),
                                     reference_samples=self._heldout_samples(k, reference),
                                     kl=name == "initial", **self._eval_sampling())
            result[name] = _summary(report, k)
        for name, labelers in self._labelers_compare(r, new, references).items():
            result[name]["labelers"] = labelers
        state = self._round(r)
        state["evaluation"] = result
        state["warnings"] = [w for w in [proxy_gold_disagreement(result["initial"])] if w]
        guard = state.get("kl_guard", {})
        if guard and held_upper(guard) > guard["budget"]:
            state["warnings"].append(f"the policy's KL {guard['kl']:.2f} (95% upper "
                                     f"{held_upper(guard):.2f}) is over the budget "
                                     f"{guard['budget']:g} and has no LoRA adapter to shrink "
                                     f"(policy.lora: false)")
        compared = result.get("previous", result["initial"])
        state["kept"] = not made_worse(compared)
        if not state["kept"]:
            low, high = compared["labelers"]["interval"]
            then = ("; kept anyway (keep_worse_rounds)" if self.config.keep_worse_rounds
                    else f"; the next round starts from round {compared['round']}'s")
            state["warnings"].append(f"the labelers find this round's policy worse than round "
                                     f"{compared['round']}'s ({compared['labelers']['win_rate']:.2f} "
                                     f"[{low:.2f}, {high:.2f}] over {compared['labelers']['labels']} "
                                     f"labels)" + then)
        for warning in state["warnings"]:
            print(f"align loop: WARNING (round {r}): {warning}", file=sys.stderr, flush=True)
        self._write_card(r)

    def _write_card(self, r: int) -> None:
        """Round r's policy's model card: its lineage in the loop and the round's results."""
        from align.loop.report import round_lineage
        from foundation.cards import write_card

        state = self._round(r)
        start = state.get("start")
        write_card(state["policy"], round_lineage(r, state, self.config, self.url,
                                                  parent=self.policy_path(start["round"]) if start else None))

    def _labelers_compare(self, r: int, new, references: dict[str, tuple]) -> dict:
        """Blind comparisons in the store (one evaluation batch per reference round), labelled at the app
        by the simulated labelers or by people, each stopped as soon as its anytime-valid interval leaves ½
        or at `eval_labels`: the labelers' win rate of the new policy against each reference. The pairs
        come one held-out answer per prompt at a time; a further answer is sampled only for a comparison
        that has used up the pairs it has and is still undecided."""
        from align.loop.evaluation import EvaluationWatch, answers_per_prompt

        cfg = self.config
        watches = {name: EvaluationWatch(self.store, f"round-{r}/eval-{name}", {}, cfg.eval_labels)
                   for name in references}
        for answer in range(answers_per_prompt(cfg.eval_labels, self.store.k, len(self.heldout))):
            undecided = {name: w for name, w in watches.items() if not w.poll()}
            if not undecided:
                break
            for name, w in undecided.items():
                k, policy = references[name]
                w.sides.update(self._comparison(r, name, answer, self._heldout_samples(r, new, answer),
                                                self._heldout_samples(k, policy, answer)))
            self.desk.judge(r, undecided, publish=lambda: self._publish(r, "evaluate", watches))
        for w in watches.values():
            w.finish()
        return {name: w.result() for name, w in watches.items()}

    def _comparison(self, r: int, name: str, answer: int, new: list, old: list) -> dict[str, str]:
        """The pairs of one answer per held-out prompt, new policy against the reference, into the round's
        evaluation batch (once: a resumed round finds them in the log); the new policy's stored side of
        each."""
        from align.loop.evaluation import comparison_pairs, read_sides, write_sides

        log, batch = self._dir(r) / "evaluation-pairs.jsonl", f"round-{r}/eval-{name}"
        sides = read_sides(log, batch, answer)
        if sides:
            return sides
        items, sides = comparison_pairs(self.heldout, [[g.text for g in new]], [[g.text for g in old]],
                                        seed=self.config.seed * 31 + r * 7 + answer * 3 + len(name),
                                        source=f"loop round {r} evaluation")
        self.store.add_pairs(items, batch=batch, purpose="evaluation")
        in_batch = {p.pair_id for p in self.store.pairs(batch=batch)}    # a pair seen before stays in its
        sides = {pid: side for pid, side in sides.items() if pid in in_batch}    # own batch
        write_sides(log, batch, answer, sides)
        return sides

    def _publish(self, r: int, stage: str, watches: dict | None = None) -> None:
        """The loop's progress, into the store for the app's pages: round, stage, labels still wanted,
        and every round's labelers' win rates so far (the running round's as they fill)."""
        evaluations = {str(k): {name: e["labelers"] for name, e in s.get("evaluation", {}).items()
                                if "labelers" in e}
                       for k, s in self.state["rounds"].items() if s.get("evaluation")}
        if watches:
            evaluations[str(r)] = {name: w.result() for name, w in watches.items()}
        self.store.set_loop_status({"round": r, "rounds": self.config.rounds, "stage": stage,
                                    "labels_wanted": self.store.remaining(), "evaluations": evaluations})

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> dict:
        self.tracker = RoundTracker(self.config.report_to if self.processes.is_main else "none", self.out,
                                    self.state["config"])
        try:
            return self._run()
        finally:
            self.desk.close()
            self.tracker.close()

    def _run(self) -> dict:
        t0 = time.perf_counter()
        main = self.processes.is_main
        for r in range(1, self.config.rounds + 1):
            state = self._round(r)
            for i, stage in enumerate(STAGES):
                if stage in state["done"]:
                    continue
                start = time.perf_counter()
                if main:
                    self._publish(r, stage)
                if main or stage in TRAINING_STAGES:
                    getattr(self, stage)(r)
                if not main:
                    state = self._wait_for(r, stage)
                    continue
                state["done"].append(stage)
                state.setdefault("seconds", {})[stage] = round(time.perf_counter() - start, 1)
                self._save()
                print(f"[round {r}/{self.config.rounds}] {i + 1}/{len(STAGES)} {stage}: "
                      f"{describe_stage(stage, state)} ({state['seconds'][stage]:.0f} s)", flush=True)
            if main:
                write_report(self.state, self.out)
                if "evaluate" in state["done"]:
                    self.tracker.log(r, round_metrics(state))
        if main:
            self._publish(self.config.rounds, "finished")
            print(f"align loop: report in {self.out / 'report.md'} "
                  f"({time.perf_counter() - t0:.0f} s this run)")
        final = self.kept(self.config.rounds)
        return self._round(final).get("evaluation", {}) if final else {}

    def _wait_for(self, r: int, stage: str) -> dict:
        """(Ranks other than 0) wait until rank 0 has recorded `stage` of round `r`, then take its state.
        A file, not a barrier: labeling by people can outlast any collective's timeout."""
        while True:
            if self.state_path.exists():
                state = json.loads(self.state_path.read_text())
                if stage in state["rounds"].get(str(r), {}).get("done", []):
                    self.state = state
                    return self._round(r)
            time.sleep(1.0)


def _summary(report: dict, against: int) -> dict:
    """What the loop keeps of an `evaluate_policy` report against the policy of round `against` (the
    labelers' comparison is added beside it)."""
    judge, rm = report.get("judge"), report["reward"]
    oracle = {"judge_win_rate": judge["win_rate"], "judge_interval": judge["interval"],
              "judge_wins_ties_losses": [judge["wins"], judge["ties"], judge["losses"]]} if judge else {}
    return {"round": against, "prompts": report["prompts"], **oracle,
            "reward_win_rate": rm["win_rate"], "reward_interval": rm["interval"],
            "reward_policy": rm["policy_mean"], "reward_reference": rm["reference_mean"],
            "kl": report["kl"], "kl_interval": report["kl_interval"],
            "length": report["length"]["policy_tokens"],
            "example": report["examples"][0] if report.get("examples") else None}


def summary_line(loop: Loop) -> str:
    """The last line: the final (kept) policy against the initial one, the labelers' win rate with its
    interval first, then the oracle judge's."""
    final = loop.kept(loop.config.rounds)
    if final == 0:
        return ("align loop: the labelers found every round worse than the initial policy; final policy = "
                "initial, labelers' win rate 0.50 [0.50, 0.50]")
    e = loop._round(final)["evaluation"]["initial"]
    parts = []
    if "labelers" in e:        # (a round evaluated before the labelers decided has the oracle's alone)
        lab = e["labelers"]
        low, high = lab["interval"]
        parts.append(f"labelers' win rate {lab['win_rate']:.2f} [{low:.2f}, {high:.2f}] over {lab['labels']} "
                     f"labels")
    if "judge_win_rate" in e:
        low, high = e["judge_interval"]
        parts.append(f"oracle judge ({loop.config.judge}) win rate {e['judge_win_rate']:.2f} "
                     f"[{low:.2f}, {high:.2f}]")
    per_round = " per round" if loop.config.round_start == "stack" else ""
    return (f"align loop: final policy (round {final}) vs initial on {e['prompts']} held-out prompts, "
            f"KL {e['kl']:.2f} nats (budget {loop.config.kl_budget:g}{per_round}): " + "; ".join(parts))


def run_loop(config: LoopConfig) -> None:
    loop = Loop(config)
    loop.run()
    if loop.processes.is_main:
        print(summary_line(loop))
