"""`align loop`: the whole loop, in rounds (as Anthropic, InstructGPT and Llama 2 trained).

Each round: the current policy samples candidates → pairs go into the LabelStore (from round 2 on,
a `random_share` of them at random, the rest by reward-model uncertainty) → labels arrive through
the labeling app's own API, from simulated labelers (any judge) or from people at the printed URL →
a reward model is fit on the labels → the policy is improved (DPO on the labels and on the reward
model's best-vs-worst pair of each prompt's candidates, or PPO on the reward model) and held to the KL
budget → evaluation: the labelers compare the new policy's held-out answers with the last kept
policy's (and the initial one's), blind, in the same app; their win rate decides whether the round is
kept. A configured judge gives its own figure beside theirs (an oracle, for benchmarks).

The stages are `stages.py`, one function each; this module holds what they share (`Loop`: the config,
the state, the store, the labeling desk, the judge, the prompts) and runs them. The app is served from
the first stage that needs it to the end of the run, so labelers find it at the same URL between
stages. Every stage of every round is recorded in `loop_state.json` when it ends (`state.py`), so an
interrupted loop resumes at the stage where it stopped. The report (`report.md`, `report.html`, PNG
plots) is rewritten after each round; the last line printed holds the final labelers' win rate, then
the oracle judge's.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from align.distributed import Processes
from align.evaluate import sample_once
from align.judges import load_judge
from align.loop.config import LoopConfig
from align.loop.labeling import labeling_desk, open_store
from align.loop.prompts import split_prompts
from align.loop.report import describe_stage, write_report
from align.loop.stages import STAGES, TRAINING_STAGES
from align.loop.state import LoopState
from align.loop.trackers import RoundTracker, round_metrics
from align.policy import Generation, Policy
from reward.ensemble import load_scorer

__all__ = ["Loop", "run_loop", "summary_line"]


class Loop:
    """What the stages share: the config, the state (`loop_state.json`), the label store and the desk
    that serves it, the judge, the training and held-out prompts; and the driver that runs the stages."""

    def __init__(self, config: LoopConfig):
        self.config = config
        self.processes = Processes()
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.url = config.store or f"sqlite:///{self.out.resolve()}/labels.db"
        self.store = open_store(config, self.url) if self.processes.is_main else None
        self.desk = labeling_desk(config, self.store) if self.processes.is_main else None
        self.judge = None if config.judge == "none" else load_judge(config.judge)
        self.train_prompts, self.heldout = split_prompts(config.prompts, config.heldout_prompts,
                                                         first_turn=config.prompt_turns == "first",
                                                         max_heldout=config.max_heldout)
        self.state = LoopState(self.out, config, announce=self.processes.is_main)

    # -- what the stages share --------------------------------------------------------------------

    def load_policy(self, r: int) -> Policy:
        """The policy after round r, for sampling, quantized as it trains (`policy.quantization`)."""
        options = self.config.policy
        return Policy.from_pretrained(self.state.policy_path(r), quantization=options.quantization,
                                      dtype=options.dtype, engine=self.config.generation.engine)

    def eval_sampling(self) -> dict:
        gen = self.config.generation
        return {"temperature": gen.eval_temperature, "max_new_tokens": gen.max_new_tokens, "seed": 1,
                "batch_size": gen.batch_size}

    def reward_model(self, r: int):
        return load_scorer(self.state.round(r)["reward_model"])

    def heldout_samples(self, r: int, policy=None, answer: int = 0) -> list[Generation]:
        """The `answer`-th held-out answers (one per prompt) of the policy after round r (0: the initial
        policy), sampled once and kept in a file, so that every round compares the same initial and
        previous answers."""
        name = "heldout-samples.jsonl" if answer == 0 else f"heldout-samples-{answer}.jsonl"
        path = (self.out if r == 0 else self.state.dir(r)) / name
        if path.exists():
            kept = [Generation(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
            if len(kept) == len(self.heldout):           # else the held-out prompts changed: sample anew
                return kept
        samples = sample_once(policy or self.load_policy(r), self.heldout,
                              **{**self.eval_sampling(), "seed": 1 + answer})
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(asdict(g), ensure_ascii=False) + "\n" for g in samples),
                       encoding="utf-8")
        tmp.replace(path)
        return samples

    def publish(self, r: int, stage: str, watches: dict | None = None) -> None:
        """The loop's progress, into the store for the app's pages: round, stage, labels still wanted,
        and every round's labelers' win rates so far (the running round's as they fill)."""
        evaluations = {str(k): {name: e["labelers"] for name, e in s.get("evaluation", {}).items()
                                if "labelers" in e}
                       for k, s in self.state.rounds.items() if s.get("evaluation")}
        if watches:
            evaluations[str(r)] = {name: w.result() for name, w in watches.items()}
        self.store.set_loop_status({"round": r, "rounds": self.config.rounds, "stage": stage,
                                    "labels_wanted": self.store.remaining(), "evaluations": evaluations})

    # -- the driver -------------------------------------------------------------------------------

    def run(self) -> dict:
        """Every stage of every round not yet done; the final kept policy's evaluation."""
        main = self.processes.is_main
        tracker = RoundTracker(self.config.report_to if main else "none", self.out, self.state.data["config"])
        t0 = time.perf_counter()
        try:
            for r in range(1, self.config.rounds + 1):
                self._run_round(r)
                if main:
                    write_report(self.state.data, self.out)
                    if "evaluate" in self.state.round(r)["done"]:
                        tracker.log(r, round_metrics(self.state.round(r)))
            if main:
                self.publish(self.config.rounds, "finished")
                print(f"align loop: report in {self.out / 'report.md'} "
                      f"({time.perf_counter() - t0:.0f} s this run)")
        finally:
            if self.desk is not None:
                self.desk.close()
            tracker.close()
        final = self.state.kept(self.config.rounds)
        return self.state.round(final).get("evaluation", {}) if final else {}

    def _run_round(self, r: int) -> None:
        main = self.processes.is_main
        state = self.state.round(r)
        for i, (stage, run_stage) in enumerate(STAGES.items()):
            if stage in state["done"]:
                continue
            start = time.perf_counter()
            if main:
                self.publish(r, stage)
            if main or stage in TRAINING_STAGES:
                run_stage(self, r)
            if not main:
                state = self.state.wait_for(r, stage)
                continue
            state["done"].append(stage)
            state.setdefault("seconds", {})[stage] = round(time.perf_counter() - start, 1)
            self.state.save()
            line = describe_stage(stage, state, self.config.keep_worse_rounds)
            print(f"[round {r}/{self.config.rounds}] {i + 1}/{len(STAGES)} {stage}: {line} "
                  f"({state['seconds'][stage]:.0f} s)", flush=True)


def summary_line(loop: Loop) -> str:
    """The last line: the final (kept) policy against the initial one, the labelers' win rate with its
    interval first, then the oracle judge's."""
    final = loop.state.kept(loop.config.rounds)
    if final == 0:
        return ("align loop: the labelers found every round worse than the initial policy; final policy = "
                "initial, labelers' win rate 0.50 [0.50, 0.50]")
    e = loop.state.round(final)["evaluation"]["initial"]
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
