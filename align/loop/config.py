"""`LoopConfig`: what `align loop` takes. The loop's own settings at the top, and one section per stage,
read by the same parser (`foundation.recipe`) as the stage's own command:

    policy:      the policy's model options (model, lora, quantization, dtype, gradient checkpointing)
    generation:  how candidates and held-out answers are sampled
    reward:      the reward model: `align reward train`'s fields, less the data and output it gets per round
    dpo:         `align dpo`'s fields, less the model (policy:) and what the loop sets per round
    ppo:         `align ppo`'s fields, likewise (its reward model is the round's)

In a recipe a section is a mapping (`dpo: {beta: 0.2}`); on the command line, a dotted flag
(`--dpo.beta 0.2`, `--policy.quantization 4bit`). Errors name the dotted key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from align.dpo.config import DPOConfig
from align.ppo.config import PPOConfig
from align.rollout import ENGINE_HELP, Engine
from foundation.errors import ConfigError
from foundation.options import MODEL_FIELDS, ModelOptions
from foundation.recipe import check, dotted, section
from reward.config import RewardConfig

__all__ = ["LoopConfig", "GenerationOptions", "PolicySection", "RewardSection", "DPOSection", "PPOSection"]

# Set by the loop for every stage, in every round: not a key of any section.
_PER_ROUND = ("output_dir", "seed", "resume")
_DATA_FIELDS = ("data", "format", "skip_invalid", "max_samples")
# "No intermediate checkpoints": each stage runs to its end in one go; the loop resumes by stage.
_NEVER = 10**9

PolicySection = section(
    ModelOptions, "PolicySection", exclude=("adapter", "merge_adapter"),
    doc="The policy's model options; the adapter is the loop's own (a fresh one; from round 2, as "
        "round_start says, on or from the last kept round's).")
RewardSection = section(
    RewardConfig, "RewardSection",
    exclude=(*_DATA_FIELDS, *_PER_ROUND, "eval_data", "adapter", "merge_adapter"),
    defaults={"num_train_epochs": 4.0, "max_length": 192, "save_steps": _NEVER, "logging_steps": _NEVER},
    doc="The reward model, refit each round on every label so far (`align reward train`'s fields).")
DPOSection = section(
    DPOConfig, "DPOSection", exclude=(*MODEL_FIELDS, *_DATA_FIELDS, *_PER_ROUND),
    defaults={"num_train_epochs": 1.0, "per_device_train_batch_size": 4, "learning_rate": 2e-4,
              "max_length": 192, "save_steps": _NEVER, "logging_steps": 4},
    doc="DPO each round, on its own labels (round_start: stack) or on every label so far (retrain) "
        "(`align dpo`'s fields; the model is in `policy:`).")
PPOSection = section(
    PPOConfig, "PPOSection", exclude=(*MODEL_FIELDS, *_PER_ROUND, "prompts", "reward_model"),
    defaults={"max_steps": 20, "learning_rate": 5e-5, "save_steps": _NEVER, "max_new_tokens": 96},
    doc="PPO against the round's reward model, on the loop's training prompts (`align ppo`'s fields; its "
        "responses as long as the candidates and held-out answers, `generation.max_new_tokens`' default).")


@dataclass
class GenerationOptions:
    """How the policy samples: the candidates to label, and the held-out answers that are judged."""

    temperature: float = field(default=1.0, metadata={
        "help": "Sampling temperature of the candidates (the demo samples them at 0.7, as the held-out "
                "answers: SmolLM2-135M writes word salad at 1.0, and DPO on it moved the policy less)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling of the candidates (1: off)."})
    max_new_tokens: int = field(default=96, metadata={
        "help": "Longest response sampled (candidates and evaluation); at 48 most review answers were cut "
                "before they ended, and a length judge had nothing to learn from."})
    eval_temperature: float = field(default=0.7, metadata={
        "help": "Sampling temperature of the held-out answers that the evaluation judges."})
    batch_size: int = field(default=64, metadata={
        "help": "Responses sampled together (decoding reads the weights once a step for the whole batch: "
                "160 candidates took 24 s at 64, 47 s at 16, with the fused engine on 2 cores)."})
    engine: Engine = field(default="auto", metadata={"help": ENGINE_HELP})

    def __post_init__(self):
        check(self.temperature >= 0, "temperature", self.temperature, "must be non-negative (0: greedy)")
        check(0 < self.top_p <= 1, "top_p", self.top_p, "must be in (0, 1]")
        check(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, "must be at least 1")
        check(self.eval_temperature >= 0, "eval_temperature", self.eval_temperature, "must be non-negative")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")


@dataclass
class LoopConfig:
    """The loop: candidates → labels → reward model → DPO or PPO → evaluation, for `rounds` rounds."""

    prompts: str = field(default="builtin:reviews", metadata={
        "help": "Training prompts: a file (.txt, JSONL, preference data) or builtin:reviews (review "
                "requests)."})
    heldout_prompts: str | None = field(default=None, metadata={
        "help": "Held-out prompts for evaluation (default: builtin:reviews' held-out third)."})
    prompt_turns: Literal["all", "first"] = field(default="all", metadata={
        "help": "Of multi-turn prompts (a preference file's conversations): all, the conversation up to "
                "the answer; first, its first user turn alone (the request that opened it; e.g. "
                "HH-RLHF's first human turns, never their answers: recipes/loop-hh.yaml)."})
    max_heldout: int = field(default=120, metadata={
        "help": "Most held-out prompts each evaluation asks (the first ones; 0: all): 120 give a win-rate "
                "interval of about ±0.09, and each costs a sampled answer per compared policy."})
    output_dir: str = field(default="outputs/loop", metadata={
        "help": "Rounds, store, models and the report."})
    rounds: int = field(default=2, metadata={"help": "Rounds of the loop."})
    prompts_per_round: int = field(default=120, metadata={
        "help": "Training prompts sampled each round, fresh ones each round while they last (a seeded "
                "draw); 0: every training prompt every round."})
    candidates_per_prompt: int = field(default=4, metadata={
        "help": "Responses sampled per prompt each round."})
    contrast: Literal["none", "initial"] = field(default="initial", metadata={
        "help": "From round 2, where each prompt's candidates come from. initial: every second one from the "
                "initial policy, so that each labelled pair (pairs_per_prompt: 1) sets the last kept "
                "policy's answer against the initial policy's, and the reward model's best-vs-worst pairs "
                "choose among both (Llama 2 drew a pair's answers from different model variants): two "
                "answers of one improved policy grow too alike for a label to tell apart; with it, VADER's "
                "win rate over the initial policy rose 0.81 → 0.90 → 0.97 in three rounds "
                "(docs/benchmarks.md, \"Round after round\"). none: the last kept policy alone."})
    pairs_per_round: int = field(default=120, metadata={"help": "Pairs sent to labelers each round."})
    pairs_per_prompt: int = field(default=1, metadata={
        "help": "Most pairs of a prompt's candidates offered to labelers: 1, one random pair per prompt (a "
                "label each on more prompts; the reward model ranks all of them with rm_pairs); 0: every "
                "pair."})
    random_share: float = field(default=1.0, metadata={
        "help": "From round 2: share of the round's pairs chosen at random, the rest by the previous "
                "reward model's uncertainty. 1 (all random) by default: at 80 labels a round (not yet "
                "measured at the default 120), uncertainty chosen pairs did not train a better reward model "
                "or policy over three seeds (benchmarks/active_vs_random.py, docs/benchmarks.md)."})
    k: int = field(default=1, metadata={
        "help": "Labels per pair (2 or more: the report measures their agreement; a split pair is dropped)."})
    labelers: int = field(default=4, metadata={
        "help": "Simulated labelers (through the app's API); 0: wait for people at the app's URL."})
    judge: str = field(default="vader", metadata={
        "help": "Judge of the simulated labelers (at judge_temperature), and an oracle figure beside the "
                "labelers' win rate in each evaluation (at temperature 0): vader, module:function "
                "(judge(prompt, a, b) -> (choice, strength)), reward:PATH (a reward model saved by `align "
                "reward train`; judge_temperature 1 draws from its own Bradley-Terry odds), or none "
                "(labelers: 0 only: people decide alone)."})
    judge_temperature: float = field(default=0.05, metadata={
        "help": "Bradley-Terry noise of the simulated labelers (vader, and judges that take `temperature`)."})
    eval_labels: int = field(default=240, metadata={
        "help": "Most labels each blind evaluation comparison of a round takes (the new policy against the "
                "last kept one, and against the initial one): it stops earlier as soon as its anytime-valid "
                "95% interval leaves ½. 240: an interval of ±0.09 at most at chance (docs/loop.md)."})
    method: Literal["dpo", "ppo"] = field(default="dpo", metadata={
        "help": "dpo: DPO on the labels; ppo: PPO against the reward model."})
    kl_budget: float = field(default=8.0, metadata={
        "help": "Most KL(policy ‖ initial) per response, in nats, that a round's policy may reach (with "
                "round_start: stack, KL(policy ‖ last kept policy): a budget per round): after "
                "training, an adapter whose KL (the upper end of its 95% interval over `kl_prompts` "
                "prompts) is over it is shrunk towards the initial policy until it fits, one well within it "
                "scaled up to it with max_adapter_scale > 1 (PPO also "
                "aims its KL controller below it). Bounds reward over-optimisation (measured across judges "
                "in docs/benchmarks.md)."})
    kl_prompts: int = field(default=40, metadata={
        "help": "Training prompts on which the KL budget is measured after each policy stage (more: a "
                "narrower interval, so less shrinking for the same guarantee)."})
    max_adapter_scale: float = field(default=3.0, metadata={
        "help": "Largest factor by which the KL guard may scale up the adapter of a policy that ended well "
                "within kl_budget (upper end under 0.85 · budget), moving it further along the direction it "
                "was trained in until it reaches the budget (ExPO, Zheng et al. 2024). 1: never scale up."})
    rm_pairs: bool = field(default=True, metadata={
        "help": "DPO also trains on pairs the round's reward model labels among every training prompt's "
                "candidates (its best vs its worst), beside the human labels (online DPO, as in RLHFlow's "
                "iterative DPO): measured across judges in docs/benchmarks.md, \"The loop with the reward "
                "model's pairs\"."})
    learnability_check: bool = field(default=False, metadata={
        "help": "Each round, two reward models fit on half of the labels so far each (split by prompt) "
                "predict the other half; unless their accuracy is above chance (one-sided 5%), the round "
                "trains on the human labels alone (no rm_pairs) and the KL guard does not scale up. Off by "
                "default: at 120 labels it also held back a judge whose round the extras lift (measured in "
                "docs/benchmarks.md, \"Noisy labelers\"); it costs about one more reward-model fit a round."})
    rm_pair_confidence: float = field(default=0.5, metadata={
        "help": "With rm_pairs: the least P(best ≻ worst) under the reward model for a pair to be used "
                "(0.5: every prompt's, rank-based; at 35 labels a threshold of 0.7 let no pair through)."})
    round_start: Literal["stack", "retrain", "continue"] = field(default="stack", metadata={
        "help": "What the policy stage trains from round 2 on. stack: a fresh adapter on top of the last "
                "kept round's policy (merged into the base, so it is DPO's and PPO's reference) on this "
                "round's labels, the KL budget held per round against that policy, saved as one adapter of "
                "the stacked ranks: each round costs what round 1 does and may move the policy kl_budget "
                "further (iterative DPO with the last policy as reference, as in RLHFlow; vader: round 2 "
                "beat round 1 at 0.86, docs/benchmarks.md). retrain: a fresh adapter from the initial "
                "policy on every label so far (a round's cost grows with the labels), the KL budget held "
                "against the initial policy (round 2 against round 1: 0.32-0.65). continue: the last kept "
                "round's adapter trained further on this round's labels, the KL budget against the initial "
                "policy."})
    keep_worse_rounds: bool = field(default=False, metadata={
        "help": "Let a round whose policy the labelers find worse (95% interval below ½ against the "
                "previous kept policy) start the next round anyway; by default the next round starts from "
                "the last policy that was not worse, and the final policy is that one."})
    report_to: Literal["none", "tensorboard", "wandb"] = field(default="none", metadata={
        "help": "Where each round's figures go, one step per round (win rates with their intervals, KL, "
                "labels, agreement, stage times): tensorboard (OUTPUT_DIR/runs), wandb, or none; the stages' "
                "own trainers take theirs in their sections (--dpo.report_to)."})
    store: str | None = field(default=None, metadata={
        "help": "Label store URL (default: OUTPUT_DIR/labels.db)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Where the labeling app listens."})
    port: int = field(default=0, metadata={"help": "The app's port (0: a free one)."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling, selection and every stage's training."})
    policy: PolicySection = field(default_factory=lambda: PolicySection(), metadata={
        "help": "The policy: model, LoRA, quantization (4bit: QLoRA), dtype, gradient checkpointing."})
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    reward: RewardSection = field(default_factory=lambda: RewardSection())
    dpo: DPOSection = field(default_factory=lambda: DPOSection())
    ppo: PPOSection = field(default_factory=lambda: PPOSection())

    def __post_init__(self):
        check(self.rounds >= 1, "rounds", self.rounds, "must be at least 1")
        check(self.max_heldout >= 0, "max_heldout", self.max_heldout,
              "must be 0 (every held-out prompt) or more")
        check(self.prompts_per_round >= 0, "prompts_per_round", self.prompts_per_round,
              "must be 0 (every prompt) or more")
        check(self.candidates_per_prompt >= 2, "candidates_per_prompt", self.candidates_per_prompt,
              "must be at least 2")
        check(self.k >= 1, "k", self.k, "must be at least 1")
        check(self.labelers >= 0, "labelers", self.labelers, "must be 0 (people) or more")
        check(self.eval_labels >= 10, "eval_labels", self.eval_labels,
              "must be at least 10 (fewer can never leave ½ at 95%)")
        check(self.judge != "none" or self.labelers == 0, "judge", self.judge,
              "must name a judge for simulated labelers (labelers > 0); `none` is for people (labelers: 0)")
        check(0.0 <= self.random_share <= 1.0, "random_share", self.random_share, "must be in [0, 1]")
        check(self.pairs_per_round >= 1, "pairs_per_round", self.pairs_per_round, "must be at least 1")
        check(self.pairs_per_prompt >= 0, "pairs_per_prompt", self.pairs_per_prompt,
              "must be 0 (every pair) or more")
        check(self.kl_budget > 0, "kl_budget", self.kl_budget, "must be positive (nats per response)")
        check(self.kl_prompts >= 1, "kl_prompts", self.kl_prompts, "must be at least 1")
        check(self.max_adapter_scale >= 1.0, "max_adapter_scale", self.max_adapter_scale,
              "must be at least 1 (1: the guard only scales down)")
        check(0.5 <= self.rm_pair_confidence < 1, "rm_pair_confidence", self.rm_pair_confidence,
              "must be in [0.5, 1)")
        # Each stage's own checks, now rather than rounds later.
        self.reward_config(data="(each round's labels)", output_dir="(each round's folder)")
        if self.method == "dpo":
            self.dpo_config(data="(each round's labels)", output_dir="(each round's folder)")
        else:
            self.ppo_config(reward_model="(each round's reward model)", output_dir="(each round's folder)")
        # After the policy's own checks, which name the field a user set (lora, quantization).
        check(self.round_start == "retrain" or self.policy.lora, "round_start", self.round_start,
              "builds on the last round's LoRA adapter: set policy.lora: true, or round_start: retrain")

    def reward_config(self, *, data: str, output_dir: str) -> RewardConfig:
        return _stage(RewardConfig, {"reward": self.reward}, data=data, output_dir=output_dir, seed=self.seed)

    def dpo_config(self, *, data: str, output_dir: str, adapter: str | None = None,
                   merge_adapter: str | None = None) -> DPOConfig:
        return _stage(DPOConfig, {"policy": self.policy, "dpo": self.dpo}, data=data, output_dir=output_dir,
                      seed=self.seed, adapter=adapter, merge_adapter=merge_adapter)

    def ppo_config(self, *, reward_model: str, output_dir: str, adapter: str | None = None,
                   merge_adapter: str | None = None) -> PPOConfig:
        """PPO's config; its KL controller aims below the loop's budget, and it stops at the budget."""
        ppo = _stage(PPOConfig, {"policy": self.policy, "ppo": self.ppo}, reward_model=reward_model,
                     output_dir=output_dir, seed=self.seed, adapter=adapter, merge_adapter=merge_adapter)
        ppo.target_kl = min(ppo.target_kl, 0.8 * self.kl_budget)
        ppo.kl_stop = min(ppo.kl_stop or self.kl_budget, self.kl_budget)
        return ppo


def _stage(cls: type, sections: dict, **owned):
    """`cls` built from the sections' values and what the loop owns; a failed check names the dotted key."""
    values, origin = {}, {}
    for name, value in sections.items():
        for key, v in asdict(value).items():
            values[key], origin[key] = v, name
    try:
        return cls(**values, **owned)
    except ConfigError as e:
        raise dotted(e, origin.get) from None
