"""Re-judge a finished loop round's policy after the KL guard scales it up to the budget (ExPO).

    .venv/bin/python -m benchmarks.scale_to_budget outputs/ubs0/vader-seed0 --round 2 --max_scale 2
    .venv/bin/python -m benchmarks.scale_to_budget outputs/demo --round 1 --budget 12    # another budget

The round's policy is scaled by `hold_to_kl_budget(..., max_scale=...)` on the run's own training
prompts, budget and sampling, then judged by the run's gold judge on the built-in held-out prompts
against the initial answers the run kept (`heldout-samples.jsonl`). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.judges import JUDGES


def main(argv: list[str] | None = None) -> int:
    from align.evaluate import evaluate_policy
    from align.loop.guards import hold_to_kl_budget
    from align.loop.prompts import review_prompts
    from align.policy import Generation, Policy
    from foundation.judges import load_judge
    from foundation.records import as_chat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished loop's output_dir (builtin:reviews prompts)")
    parser.add_argument("--round", type=int, default=2)
    parser.add_argument("--max_scale", type=float, default=2.0)
    parser.add_argument("--budget", type=float, help="the KL budget to scale to (default: the run's)")
    args = parser.parse_args(argv)
    state = json.loads((args.run / "loop_state.json").read_text())
    cfg, gen = state["config"], state["config"]["generation"]
    sampling = {"temperature": gen["eval_temperature"], "max_new_tokens": gen["max_new_tokens"], "seed": 1,
                "batch_size": gen["batch_size"]}
    train, heldout = ([as_chat(p) for p in ps] for ps in review_prompts())
    round_state = state["rounds"][str(args.round)]
    policy = Policy.from_pretrained(round_state["policy"], dtype=cfg["policy"]["dtype"], engine=gen["engine"])
    initial = Policy.from_pretrained(cfg["policy"]["model"], dtype=cfg["policy"]["dtype"],
                                     engine=gen["engine"])
    budget = args.budget or cfg["kl_budget"]
    info = hold_to_kl_budget(policy, initial, train[: cfg["kl_prompts"]], budget=budget,
                             sampling=sampling, out=Path(tempfile.mkdtemp()), max_scale=args.max_scale)
    kept = [Generation(**json.loads(line))
            for line in (args.run / "heldout-samples.jsonl").read_text(encoding="utf-8").splitlines()]
    judge = load_judge(JUDGES.get(cfg["judge"], cfg["judge"]))
    report = evaluate_policy(policy, initial, heldout, judge=judge, reference_samples=kept, **sampling)
    ended = round_state["evaluation"]["initial"]
    print(json.dumps({"run": str(args.run), "round": args.round, "judge": cfg["judge"], "seed": cfg["seed"],
                      "loop_win_rate": ended["judge_win_rate"], "loop_kl": ended["kl"],
                      "scale": info["scale"],
                      "guard_kl_upper": info["kl_upper"], "win_rate": report["judge"]["win_rate"],
                      "interval": report["judge"]["interval"], "kl": report["kl"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
