"""Is active selection worth it? The same label budget spent by uncertainty or at random.

    .venv/bin/python -m benchmarks.active_vs_random --seeds 0,1,2 [--judge vader] [-- extra loop flags]

Two arms of the demo recipe, each a fresh `align loop` process per seed: `active` (from round 2 every
pair of the round chosen by the previous reward model's uncertainty, `--random_share 0`) and `random`
(`--random_share 1`). Same rounds, pairs per round and k: the same number of labels. Reported per run
and as a mean over seeds: the final reward model's accuracy on a fixed held-out labelled set (pairs of
two initial-policy answers to each held-out prompt, labelled by the deterministic gold judge, ties
left out), with its 95% Wilson interval, and the final gold win rate over the initial policy with its
interval. Results go to OUT/results.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks.judges import JUDGES
from benchmarks.loop_runs import run_loop, split_passthrough

ARMS = {"active": ["--random_share", "0"], "random": ["--random_share", "1"]}


def heldout_pairs(judge_spec: str, out: Path) -> list:
    """The fixed held-out labelled set: two answers of the initial policy to each held-out prompt,
    labelled by the gold judge (made once, kept in OUT/heldout-pairs.jsonl)."""
    from align.loop.prompts import review_prompts
    from align.policy import Policy
    from foundation.judges import load_judge
    from foundation.readers import read_preferences
    from foundation.records import PreferenceRecord, as_chat, write_jsonl

    path = out / "heldout-pairs.jsonl"
    if path.exists():
        return read_preferences(path).records
    judge = load_judge(judge_spec)
    prompts = [as_chat(p) for p in review_prompts()[1]]
    answers = Policy.from_pretrained("builtin:smollm2-135m-instruct").generate(
        prompts, n=2, temperature=1.0, max_new_tokens=48, seed=12345)
    records = []
    for prompt, (a, b) in zip(prompts, answers):
        choice, strength = judge(prompt, a.text, b.text)
        if choice in ("A", "B") and a.text != b.text:
            chosen, rejected = (a.text, b.text) if choice == "A" else (b.text, a.text)
            records.append(PreferenceRecord(prompt=prompt, chosen=[{"role": "assistant", "content": chosen}],
                                            rejected=[{"role": "assistant", "content": rejected}],
                                            labeler=f"gold:{judge_spec}", source="held-out"))
    write_jsonl(records, path)
    return records


def run_arm(arm: str, seed: int, judge: str, out: Path, extra: list[str], pairs: list) -> dict:
    from foundation.stats import wilson_interval
    from reward.ensemble import load_scorer
    from reward.evaluate import evaluate_records

    folder = out / f"{arm}-seed{seed}"
    done, seconds = run_loop(judge, seed, folder, [*ARMS[arm], *extra])
    if done.returncode != 0:
        return {"arm": arm, "seed": seed, "error": done.stderr.strip().splitlines()[-1:]}
    state = json.loads((folder / "loop_state.json").read_text())
    last = state["rounds"][str(max(int(r) for r in state["rounds"]))]
    accuracy = evaluate_records(load_scorer(last["reward_model"]), pairs)["accuracy"]
    e = last["evaluation"]["initial"]
    return {"arm": arm, "seed": seed, "seconds": seconds,
            "labels": last["labels"]["labels"], "rm_accuracy": accuracy,
            "rm_interval": list(wilson_interval(accuracy, len(pairs))), "pairs": len(pairs),
            "judge_win_rate": e["judge_win_rate"], "judge_interval": e["judge_interval"], "kl": e["kl"]}


def table(rows: list[dict]) -> str:
    lines = ["| arm | seed | labels | final RM accuracy on held-out labels [95%] "
             "| gold win rate [95%] | KL |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arm']} | {r['seed']} | error: {r['error']} | | | |")
            continue
        lines.append(f"| {r['arm']} | {r['seed']} | {r['labels']} | {r['rm_accuracy']:.3f} "
                     f"[{r['rm_interval'][0]:.3f}, "
                     f"{r['rm_interval'][1]:.3f}] (n = {r['pairs']}) | {r['judge_win_rate']:.2f} "
                     f"[{r['judge_interval'][0]:.2f}, {r['judge_interval'][1]:.2f}] | {r['kl']:.2f} |")
    for arm in ARMS:
        ok = [r for r in rows if r["arm"] == arm and "error" not in r]
        if len(ok) > 1:
            acc, win = [r["rm_accuracy"] for r in ok], [r["judge_win_rate"] for r in ok]
            lines.append(f"| **{arm}, mean of {len(ok)}** | | | "
                         f"{statistics.fmean(acc):.3f} ± {statistics.stdev(acc):.3f} "
                         f"(sd over seeds) | {statistics.fmean(win):.2f} ± {statistics.stdev(win):.2f} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_passthrough(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--judge", default="vader", help="a name in benchmarks/judges.py or module:function")
    parser.add_argument("--out", default="outputs/active-vs-random")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge = JUDGES.get(args.judge, args.judge)
    pairs = heldout_pairs(judge, out)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in ARMS:
            rows.append(run_arm(arm, seed, judge, out, extra, pairs))
            print(table(rows[-1:]).splitlines()[2], flush=True)
            (out / "results.json").write_text(json.dumps(rows, indent=1))
    flags = " ".join([*argv, *(["--", *extra] if extra else [])])
    print(f"\npython -m benchmarks.active_vs_random {flags}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
