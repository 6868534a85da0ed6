"""How often a finished loop round's reward model agrees with the run's gold judge.

    .venv/bin/python -m benchmarks.rm_vs_gold outputs/demo --round 1

Two figures, over the pairs the gold judge does not call a tie: the reward model's best against its
worst answer among each training prompt's candidates of the round (the pairs `rm_pairs` gives DPO),
and the round's held-out answers against the initial policy's (the pairs the evaluation judges).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.judges import JUDGES


def _agreement(judge, triples) -> dict:
    """(prompt, the answer the reward model prefers, the other): how often the judge prefers it too."""
    verdicts = [judge(prompt, preferred, other)[0] for prompt, preferred, other in triples]
    decided = [v for v in verdicts if v in ("A", "B")]
    return {"agree": decided.count("A"), "pairs": len(decided), "ties": len(verdicts) - len(decided)}


def main(argv: list[str] | None = None) -> int:
    from align.loop.prompts import review_prompts
    from foundation.candidates import read_candidates
    from foundation.judges import load_judge
    from foundation.records import as_chat
    from reward.ensemble import load_scorer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished loop's output_dir (builtin:reviews prompts)")
    parser.add_argument("--round", type=int, default=1)
    args = parser.parse_args(argv)
    state = json.loads((args.run / "loop_state.json").read_text())
    judge = load_judge(JUDGES.get(state["config"]["judge"], state["config"]["judge"]))
    rm = load_scorer(state["rounds"][str(args.round)]["reward_model"])
    folder = args.run / f"round-{args.round}"

    best_worst = []
    for s in read_candidates(folder / "candidates.jsonl"):
        texts = list(dict.fromkeys(c.content for c in s.responses if c.content.strip()))
        if len(texts) >= 2:
            scores = rm.score([s.prompt] * len(texts), texts)
            ranked = [t for _, t in sorted(zip(scores, texts))]
            best_worst.append((s.prompt, ranked[-1], ranked[0]))

    heldout = [as_chat(p) for p in review_prompts()[1]]
    answers = [[json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
               for path in (folder / "heldout-samples.jsonl", args.run / "heldout-samples.jsonl")]
    policy_scores, initial_scores = (rm.score(heldout, texts) for texts in answers)
    heldout_pairs = [(p, a, b) if x >= y else (p, b, a)
                     for p, a, b, x, y in zip(heldout, *answers, policy_scores, initial_scores)]

    print(json.dumps({"run": str(args.run), "round": args.round, "judge": state["config"]["judge"],
                      "best_vs_worst": _agreement(judge, best_worst),
                      "heldout": _agreement(judge, heldout_pairs)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
