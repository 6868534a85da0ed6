"""`align evaluate --policy P --reference R --prompts FILE [--reward-model DIR] [--judge vader|mod:fn]`."""

from __future__ import annotations

from align.cli import ArgumentParser
from align.rollout import ENGINE_HELP, ENGINES


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="align evaluate",
                            description="Win rate of a policy over a reference on held-out prompts, "
                                        "with KL and length.")
    parser.add_argument("--policy", required=True,
                        help="Adapter folder, model folder, hub id or builtin:ALIAS.")
    parser.add_argument("--reference", required=True,
                        help="The model to compare against (e.g. the initial policy).")
    parser.add_argument("--prompts", required=True, help=".txt, JSONL with `prompt`, or a preference file.")
    parser.add_argument("--reward-model", "--reward_model",
                        help="A reward-model folder (align reward train).")
    parser.add_argument("--judge",
                        help="vader, module:function with judge(prompt, a, b) -> (choice, strength), or "
                             "reward:PATH (a reward model saved by `align reward train`).")
    parser.add_argument("--max-prompts", "--max_prompts", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", "--max_new_tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--out", default="outputs/evaluate",
                        help="Folder for evaluation.json and evaluation.png.")
    args = parser.parse_args(argv)
    if not args.reward_model and not args.judge:
        parser.error("give --reward-model DIR and/or --judge vader|module:function to decide the winner")

    from align.evaluate import evaluate_policy, write_report
    from align.judges import load_judge
    from align.policy import Policy
    from foundation.candidates import read_prompts

    judge = load_judge(args.judge) if args.judge else None
    reward_model = None
    if args.reward_model:
        from reward.ensemble import load_scorer

        reward_model = load_scorer(args.reward_model)
    prompts = read_prompts(args.prompts)[: args.max_prompts]
    report = evaluate_policy(Policy.from_pretrained(args.policy, engine=args.engine),
                             Policy.from_pretrained(args.reference, engine=args.engine),
                             prompts, reward_model=reward_model, judge=judge, temperature=args.temperature,
                             max_new_tokens=args.max_new_tokens, seed=args.seed)
    report.update({"policy": args.policy, "reference": args.reference, "judge_spec": args.judge,
                   "reward_model_path": args.reward_model})
    path = write_report(report, args.out)
    parts = []
    def interval(values) -> str:
        return f"[{values[0]:.3f}, {values[1]:.3f}]"

    if "judge" in report:
        parts.append(f"judge win rate {report['judge']['win_rate']:.3f} "
                     f"{interval(report['judge']['interval'])}")
    if "reward" in report:
        parts.append(f"reward-model win rate {report['reward']['win_rate']:.3f} "
                     f"{interval(report['reward']['interval'])} (mean reward "
                     f"{report['reward']['policy_mean']:+.3f} vs {report['reward']['reference_mean']:+.3f})")
    if report["kl"] is not None:
        parts.append(f"KL {report['kl']:.3f} nats per response {interval(report['kl_interval'])}")
    parts.append(f"length {report['length']['policy_tokens']:.0f} vs "
                 f"{report['length']['reference_tokens']:.0f} tokens")
    print(f"{len(prompts)} prompts: " + "; ".join(parts) + f"\nreport: {path} and {report['plot']}")
    return 0
