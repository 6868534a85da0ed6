"""`align loop`: the whole loop, in rounds (as Anthropic, InstructGPT and Llama 2 trained).

Each round: the current policy samples candidates → pairs go into the LabelStore (from round 2 on,
chosen by reward-model uncertainty, with a random slice kept for comparison) → labels arrive through
the labeling app's own API, from simulated labelers (any judge) or from people at the printed URL →
the reward model is refit on every label so far → the policy is improved (DPO on the labels, or PPO
on the reward model) → evaluation on held-out prompts against the initial and the previous policy.

Every stage of every round is recorded in `loop_state.json` when it ends, so an interrupted loop
resumes at the stage where it stopped. The report (`report.md`, `report.html`, PNG plots) is
rewritten after each round; the last line printed holds the final gold-judge win rate.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from reward.configuration import check

__all__ = ["LoopConfig", "run_loop"]

STAGES = ("generate", "select", "label", "reward", "policy", "evaluate")
# Under `accelerate launch` every process trains (these stages); rank 0 alone samples, serves the app,
# owns the store, evaluates and writes the state and the report, while the others wait for it.
TRAINING_STAGES = ("reward", "policy")


@dataclass
class LoopConfig:
    """The loop: candidates → labels → reward model → DPO or PPO → evaluation, for `rounds` rounds."""

    model: str = field(default="builtin:smollm2-135m-instruct", metadata={"help": "The initial (SFT'd) policy."})
    prompts: str = field(default="builtin:reviews", metadata={
        "help": "Training prompts: a file (.txt, JSONL, preference data) or builtin:reviews (review requests)."})
    heldout_prompts: str | None = field(default=None, metadata={
        "help": "Held-out prompts for evaluation (default: builtin:reviews' held-out third)."})
    output_dir: str = field(default="outputs/loop", metadata={"help": "Rounds, store, models and the report."})
    rounds: int = field(default=2, metadata={"help": "Rounds of the loop."})
    candidates_per_prompt: int = field(default=4, metadata={"help": "Responses sampled per prompt each round."})
    pairs_per_round: int = field(default=40, metadata={"help": "Pairs sent to labelers each round."})
    random_share: float = field(default=0.25, metadata={
        "help": "From round 2: share of the round's pairs chosen at random (the rest by uncertainty), to compare."})
    k: int = field(default=2, metadata={"help": "Labels per pair."})
    labelers: int = field(default=4, metadata={
        "help": "Simulated labelers (through the app's API); 0: wait for people at the app's URL."})
    judge: str = field(default="vader", metadata={
        "help": "Judge of the simulated labelers and gold judge of the evaluation: vader or module:function "
                "(judge(prompt, a, b) -> (choice, strength))."})
    judge_temperature: float = field(default=0.05, metadata={"help": "Bradley-Terry noise of the vader labelers."})
    reward_model: str = field(default="builtin:minilm-l6", metadata={"help": "Backbone of the reward model."})
    reward_epochs: float = field(default=4.0, metadata={"help": "Reward-model epochs over the labels so far."})
    method: Literal["dpo", "ppo"] = field(default="dpo", metadata={
        "help": "dpo: DPO on the labels; ppo: PPO against the reward model."})
    policy_steps: int | None = field(default=None, metadata={
        "help": "DPO steps, or PPO updates, per round (default: policy_epochs over the labels for DPO, 20 for PPO)."})
    policy_epochs: float = field(default=3.0, metadata={"help": "DPO epochs over the labels so far, each round."})
    policy_learning_rate: float = field(default=2e-4, metadata={"help": "Learning rate of the policy's LoRA."})
    beta: float = field(default=0.1, metadata={"help": "DPO β."})
    max_new_tokens: int = field(default=48, metadata={"help": "Longest response sampled."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the candidates."})
    store: str | None = field(default=None, metadata={"help": "Label store URL (default: OUTPUT_DIR/labels.db)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Where the labeling app listens."})
    port: int = field(default=0, metadata={"help": "The app's port (0: a free one)."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling, selection and training."})

    def __post_init__(self):
        check(self.rounds >= 1, "rounds", self.rounds, "must be at least 1")
        check(self.candidates_per_prompt >= 2, "candidates_per_prompt", self.candidates_per_prompt, "must be at least 2")
        check(self.k >= 1, "k", self.k, "must be at least 1")
        check(self.labelers >= 0, "labelers", self.labelers, "must be 0 (people) or more")
        check(0.0 <= self.random_share <= 1.0, "random_share", self.random_share, "must be in [0, 1]")
        check(self.pairs_per_round >= 1, "pairs_per_round", self.pairs_per_round, "must be at least 1")


def _prompts(spec: str | None, held_out: bool) -> list:
    if spec in (None, "builtin:reviews"):
        from align.demo import review_prompts

        train, heldout = review_prompts()
        return heldout if held_out else train
    from reward.candidates import read_prompts

    return read_prompts(spec)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Loop:
    def __init__(self, config: LoopConfig):
        from align.distributed import Processes
        from labeling_app.store import LabelStore
        from reward.judges import load_judge

        self.config = config
        self.processes = Processes()
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = LabelStore(config.store or f"sqlite:///{self.out.resolve()}/labels.db", k=config.k,
                                seed=config.seed) if self.processes.is_main else None
        self.judge = load_judge(config.judge)
        as_chat = lambda ps: [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in ps]  # noqa: E731
        self.train_prompts = as_chat(_prompts(config.prompts, held_out=False))
        heldout = config.heldout_prompts or ("builtin:reviews" if config.prompts == "builtin:reviews" else None)
        if heldout:
            self.heldout = as_chat(_prompts(heldout, held_out=True))
        else:   # no held-out set given: keep a third of the prompts apart
            cut = len(self.train_prompts) * 2 // 3
            self.train_prompts, self.heldout = self.train_prompts[:cut], self.train_prompts[cut:]
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
        return self.config.model if r == 0 else self._round(r)["policy"]

    # -- stages -----------------------------------------------------------------------------------

    def generate(self, r: int) -> None:
        from align.policy import Policy
        from reward.candidates import Candidate, CandidateSet, write_candidates

        cfg = self.config
        policy = Policy.from_pretrained(self.policy_path(r - 1))
        gens = policy.generate(self.train_prompts, n=cfg.candidates_per_prompt, temperature=cfg.temperature,
                               max_new_tokens=cfg.max_new_tokens, seed=cfg.seed + r, progress=True)
        sets = [CandidateSet(f"r{r}-p{i:04d}", p, [Candidate(g.text, model=policy.name, adapter=policy.adapter,
                                                             sampling=g.sampling, logprobs=g.logprobs,
                                                             finished=g.finished) for g in gs])
                for i, (p, gs) in enumerate(zip(self.train_prompts, gens))]
        write_candidates(sets, self._dir(r) / "candidates.jsonl")

    def select(self, r: int) -> None:
        """Choose the round's pairs: all at random in round 1; from round 2, the most uncertain for
        the last reward model, plus a random slice for comparison. Import them into the store."""
        from labeling_app.priority import uncertainty_priority
        from labeling_app.store import Pair, candidate_pairs, pair_key
        from reward.candidates import read_candidates

        cfg = self.config
        rng = random.Random(cfg.seed * 7919 + r)
        pool = candidate_pairs(read_candidates(self._dir(r) / "candidates.jsonl"), source=f"loop round {r}")
        rng.shuffle(pool)
        n = min(cfg.pairs_per_round, len(pool))
        info = {"pool": len(pool)}
        if r == 1 or cfg.random_share >= 1.0:
            chosen = {"random": pool[:n]}
        else:
            # Each pair is scored once; the same scores then order the labelers' queue.
            scores = uncertainty_priority(self._reward_model(r - 1))(
                [Pair(pair_key(p["prompt"], p["response_a"], p["response_b"]), p["prompt"], p["response_a"],
                      p["response_b"]) for p in pool])
            n_random = round(n * cfg.random_share)
            ranked = sorted(range(len(pool)), key=lambda i: -scores[i])
            active = ranked[: n - n_random]
            taken = set(active)
            random_slice = [i for i in range(len(pool)) if i not in taken][:n_random]   # the pool is shuffled
            chosen = {"active": [pool[i] for i in active], "random": [pool[i] for i in random_slice]}
            by_key = {pair_key(pool[i]["prompt"], pool[i]["response_a"], pool[i]["response_b"]): scores[i]
                      for i in active}
            info["uncertainty"] = {"active": statistics.fmean(scores[i] for i in active),
                                   "random": statistics.fmean(scores[i] for i in random_slice) if n_random else None}
        for slice_name, items in chosen.items():
            batch = f"round-{r}/{slice_name}"
            self.store.add_pairs(items, batch=batch)
            if slice_name == "active":
                self.store.prioritize(lambda pairs: [by_key[p.pair_id] for p in pairs], batch=batch)
            info[slice_name] = len(items)
        self._round(r)["select"] = info

    def label(self, r: int) -> None:
        """Serve the app; simulated labelers (or people) label until every pair of the round has k labels."""
        from labeling_app.app import build_app, launch_options
        from labeling_app.client import simulate
        from labeling_app.config import AppConfig
        from reward.judges import load_judge

        cfg = self.config
        app = build_app(self.store, AppConfig())   # k lives in the store
        port = cfg.port or _free_port()
        app.launch(server_name=cfg.host, server_port=port, prevent_thread_lock=True, quiet=True,
                   **launch_options(self.store))
        url = f"http://{cfg.host}:{port}"
        batches = (f"round-{r}/active", f"round-{r}/random")
        remaining = lambda: sum(self.store.remaining(batch=b) for b in batches)  # noqa: E731
        try:
            if cfg.labelers > 0:
                accounts = [(f"sim-{i + 1:02d}", f"simulated-{i + 1:02d}") for i in range(cfg.labelers)]
                known = {name for name, _ in self.store.labelers()}
                for name, password in accounts:
                    if name not in known:
                        self.store.add_labeler(name, password)
                labelers = load_judge(cfg.judge, temperature=cfg.judge_temperature)   # noisy, unlike the gold judge
                result = simulate(url, accounts, labelers, seed=cfg.seed + r)
                if remaining():
                    raise RuntimeError(f"the simulated labelers stopped with {remaining()} labels missing: "
                                       f"{result.errors[:3]}")
            else:
                from tqdm.auto import tqdm

                total = remaining()
                print(f"align loop: round {r}: label {total} comparisons at {url} "
                      f"(accounts: `align label add-user NAME --store {self.store.url}`)", flush=True)
                with tqdm(total=total, desc=f"round {r} labels", unit="label") as bar:
                    while (left := remaining()) > 0:
                        bar.update(total - left - bar.n)
                        time.sleep(2)
                    bar.update(total - bar.n)
        finally:
            app.close()
        from labeling_app.quality import label_stats

        stats = label_stats(self.store)
        self._round(r)["labels"] = {"labels": stats["labels"], "krippendorff_alpha": stats["krippendorff_alpha"],
                                    "pairwise_agreement": stats["pairwise_agreement"]}

    def _records(self, r: int | None = None, slice_name: str | None = None):
        from labeling_app.export import aggregate

        if r is None:
            return aggregate(self.store)[0]
        return aggregate(self.store, batch=f"round-{r}/{slice_name}")[0]

    def _reward_model(self, r: int):
        from reward.model import RewardModel

        return RewardModel.from_pretrained(self._round(r)["reward_model"])

    def reward(self, r: int) -> None:
        """Accuracy of the previous reward model on this round's fresh labels (by slice), then refit on all labels."""
        from reward.config import RewardConfig
        from reward.records import write_jsonl
        from reward.trainer import train_reward

        cfg = self.config
        data = self._dir(r) / "preferences.jsonl"
        info = {}
        if self.processes.is_main:
            if r > 1:
                from reward.evaluate import evaluate_records

                rm = self._reward_model(r - 1)
                for slice_name in ("active", "random"):
                    recs = [x for x in self._records(r, slice_name) if not x.tie]
                    if recs:
                        info[f"fresh_accuracy_{slice_name}"] = evaluate_records(rm, recs)["accuracy"]
            records = self._records()
            write_jsonl(records, data)
            info["train_records"] = len(records)
        self.processes.barrier()                    # the data is written before anyone trains on it
        info["reward_model"] = self._round(r)["reward_model"] = train_reward(RewardConfig(
            model=cfg.reward_model, data=str(data), output_dir=str(self._dir(r) / "reward"),
            num_train_epochs=cfg.reward_epochs, per_device_train_batch_size=8, learning_rate=5e-5, max_length=192,
            save_steps=10**6, logging_steps=10**6, seed=cfg.seed))
        self._round(r)["reward"] = info

    def policy(self, r: int) -> None:
        cfg = self.config
        if cfg.method == "dpo":
            import math

            from align.dpo import DPOConfig, train_dpo

            # every rank has rank 0's state of the reward stage (`_wait_for`)
            steps = cfg.policy_steps or math.ceil(cfg.policy_epochs * self._round(r)["reward"]["train_records"] / 4)

            out = train_dpo(DPOConfig(model=cfg.model, data=str(self._dir(r) / "preferences.jsonl"),
                                      output_dir=str(self._dir(r) / "dpo"), max_steps=steps,
                                      per_device_train_batch_size=4, learning_rate=cfg.policy_learning_rate,
                                      beta=cfg.beta, max_length=192, save_steps=10**6, logging_steps=4,
                                      seed=cfg.seed))
        else:
            from align.ppo import PPOConfig, train_ppo

            prompts = self._dir(r) / "prompts.jsonl"
            # 16 rollouts an update (fewer with fewer prompts), shared among the processes
            batch = max(1, min(16, len(self.train_prompts)) // self.processes.world)
            if self.processes.is_main:
                prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in self.train_prompts))
            self.processes.barrier()
            out = train_ppo(PPOConfig(model=cfg.model, prompts=str(prompts), reward_model=self._round(r)["reward_model"],
                                      output_dir=str(self._dir(r) / "ppo"), max_steps=cfg.policy_steps or 20,
                                      per_device_train_batch_size=batch,
                                      mini_batch_size=batch // 2 if batch % 2 == 0 else batch,
                                      learning_rate=cfg.policy_learning_rate / 4, max_new_tokens=cfg.max_new_tokens,
                                      seed=cfg.seed, save_steps=10**6))
        self._round(r)["policy"] = out

    def evaluate(self, r: int) -> None:
        from align.evaluate import evaluate_policy
        from align.policy import Policy

        new = Policy.from_pretrained(self.policy_path(r))
        rm = self._reward_model(r)
        sampling = {"temperature": 0.7, "max_new_tokens": self.config.max_new_tokens, "seed": 1}
        # The new policy answers once; both comparisons judge the same answers.
        samples = [g[0] for g in new.generate(self.heldout, **sampling)]
        result = {}
        for name, against in (("initial", 0), ("previous", r - 1)):
            if name == "previous" and r == 1:
                continue
            report = evaluate_policy(new, Policy.from_pretrained(self.policy_path(against)), self.heldout,
                                     reward_model=rm, judge=self.judge, policy_samples=samples, **sampling)
            result[name] = {"judge_win_rate": report["judge"]["win_rate"], "reward_win_rate": report["reward"]["win_rate"],
                            "reward_policy": report["reward"]["policy_mean"],
                            "reward_reference": report["reward"]["reference_mean"], "kl": report["kl"],
                            "length": report["length"]["policy_tokens"],
                            "example": report["examples"][0] if report.get("examples") else None}
        self._round(r)["evaluation"] = result

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> dict:
        t0 = time.perf_counter()
        main = self.processes.is_main
        for r in range(1, self.config.rounds + 1):
            state = self._round(r)
            for i, stage in enumerate(STAGES):
                if stage in state["done"]:
                    continue
                start = time.perf_counter()
                if main or stage in TRAINING_STAGES:
                    getattr(self, stage)(r)
                if not main:
                    state = self._wait_for(r, stage)
                    continue
                state["done"].append(stage)
                state.setdefault("seconds", {})[stage] = round(time.perf_counter() - start, 1)
                self._save()
                print(f"[round {r}/{self.config.rounds}] {i + 1}/{len(STAGES)} {stage}: "
                      f"{_describe(stage, state)} ({state['seconds'][stage]:.0f} s)", flush=True)
            if main:
                write_report(self.state, self.out)
        final = self._round(self.config.rounds)["evaluation"]["initial"]
        if main:
            print(f"align loop: report in {self.out / 'report.md'} ({time.perf_counter() - t0:.0f} s this run)")
        return final

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

def _describe(stage: str, state: dict) -> str:
    if stage == "select":
        s = state["select"]
        return ", ".join(f"{k} {v}" for k, v in s.items() if k != "uncertainty")
    if stage == "label":
        lab = state["labels"]
        return f"{lab['labels']} labels in the store, Krippendorff's alpha {lab['krippendorff_alpha']}"
    if stage == "reward":
        info = state["reward"]
        fresh = ", ".join(f"{k.split('_')[-1]} {v:.2f}" for k, v in info.items() if k.startswith("fresh"))
        return f"refit on {info['train_records']} records" + (f"; previous RM on fresh labels: {fresh}" if fresh else "")
    if stage == "evaluate":
        return "; ".join(f"vs {k}: judge win rate {v['judge_win_rate']:.2f}, RM win rate {v['reward_win_rate']:.2f}, "
                         f"KL {v['kl']:.2f}" for k, v in state["evaluation"].items())
    if stage == "policy":
        return state["policy"]
    return "done"


def write_report(state: dict, out: Path) -> Path:
    """report.md and report.html with PNG plots of the rounds so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = sorted((int(r), s) for r, s in state["rounds"].items() if "evaluation" in s)
    if not rounds:
        return out / "report.md"
    xs = [r for r, _ in rounds]
    ev = [s["evaluation"] for _, s in rounds]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    axes[0].plot(xs, [e["initial"]["judge_win_rate"] for e in ev], "o-", label="judge, vs initial")
    axes[0].plot(xs, [e["initial"]["reward_win_rate"] for e in ev], "s--", label="reward model, vs initial")
    prev = [(x, e["previous"]["judge_win_rate"]) for x, e in zip(xs, ev) if "previous" in e]
    if prev:
        axes[0].plot(*zip(*prev), "^-", label="judge, vs previous round")
    axes[0].axhline(0.5, color="grey", lw=0.8)
    axes[0].set_ylim(0, 1)
    axes[0].set_title("win rate on held-out prompts")
    axes[0].legend(fontsize=7)
    axes[1].plot(xs, [e["initial"]["reward_policy"] for e in ev], "o-", label="policy")
    axes[1].plot(xs, [e["initial"]["reward_reference"] for e in ev], "s--", label="initial")
    axes[1].set_title("mean reward (this round's RM)")
    axes[1].legend(fontsize=7)
    axes[2].plot(xs, [e["initial"]["kl"] for e in ev], "o-")
    axes[2].set_title("KL(policy ‖ initial), nats")
    alpha = [(x, s["labels"]["krippendorff_alpha"]) for x, (_, s) in zip(xs, rounds)
             if s["labels"]["krippendorff_alpha"] is not None]
    if alpha:
        axes[3].plot(*zip(*alpha), "o-", label="Krippendorff's alpha")
    for slice_name, marker in (("active", "s"), ("random", "^")):
        acc = [(x, s["reward"][f"fresh_accuracy_{slice_name}"]) for x, (_, s) in zip(xs, rounds)
               if f"fresh_accuracy_{slice_name}" in s.get("reward", {})]
        if acc:
            axes[3].plot(*zip(*acc), marker + "--", label=f"previous RM accuracy on fresh labels ({slice_name})")
    axes[3].set_title("labels")
    axes[3].set_ylim(-0.2, 1.05)
    axes[3].legend(fontsize=6)
    for ax in axes:
        ax.set_xlabel("round")
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=100)
    plt.close(fig)

    rows = []
    for (r, s), e in zip(rounds, ev):
        fresh = s.get("reward", {})
        rows.append(f"| {r} | {e['initial']['judge_win_rate']:.2f} | "
                    f"{e['previous']['judge_win_rate'] if 'previous' in e else float('nan'):.2f} | "
                    f"{e['initial']['reward_win_rate']:.2f} | {e['initial']['kl']:.2f} | {e['initial']['length']:.0f} | "
                    f"{s['labels']['labels']} | {s['labels']['krippendorff_alpha']} | "
                    f"{fresh.get('fresh_accuracy_active', float('nan')):.2f} / {fresh.get('fresh_accuracy_random', float('nan')):.2f} |")
    cfg = state["config"]
    example = ev[-1]["initial"].get("example") or {}
    md = f"""# align loop report

Policy `{cfg['model']}`, {cfg['rounds']} rounds, {cfg['method'].upper()}, judge `{cfg['judge']}`
({cfg['labelers']} simulated labelers, k = {cfg['k']}), reward model on `{cfg['reward_model']}`.

![rounds](report.png)

| round | judge win rate vs initial | vs previous | RM win rate vs initial | KL | length (tokens) | labels so far | alpha | previous RM on fresh labels (uncertain / random) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

From round 2, pairs are chosen by the previous reward model's uncertainty, with a random slice kept:
the previous model's accuracy on the fresh labels of each slice shows whether the uncertain pairs were
indeed the ones it got wrong (lower = more informative to label).

Example (held-out): **{example.get('prompt', '')}**
- initial: {example.get('reference', '')}
- final: {example.get('policy', '')}
"""
    (out / "report.md").write_text(md, encoding="utf-8")
    import html

    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>align loop report</title><body style='font-family:sans-serif;"
        "max-width:1100px;margin:auto'><pre style='white-space:pre-wrap'>" + html.escape(md) +
        "</pre><img src='report.png' style='width:100%'></body>", encoding="utf-8")
    return out / "report.md"


def run_loop(config: LoopConfig) -> None:
    loop = Loop(config)
    final = loop.run()
    if loop.processes.is_main:
        print(f"align loop: final policy vs initial on held-out prompts: gold judge ({config.judge}) "
              f"win rate {final['judge_win_rate']:.2f}")
