"""Is the loop robust to the judge, and does every round of labels make it better? The demo recipe
with judges of different kinds, seed by seed.

    .venv/bin/python -m benchmarks.loop_judges                       # 5 judges x seed 0, demo recipe
    .venv/bin/python -m benchmarks.loop_judges --judges vader,target_length --seeds 0,1 -- --rounds 3

Each run is a fresh `align loop --config recipes/demo.yaml --judge SPEC --seed S` process (flags after
`--` go to every run). The table: the final kept policy against the initial one on the held-out
prompts — the simulated labelers' win rate (blind, in the app; anytime-valid interval) and the oracle
judge's (the judge at temperature 0, 95% Wilson interval) — the reward model's (proxy) win rate, KL per
response, warnings, wall time. One round: `pass` is an oracle win rate ≥ 0.75 with lower bound ≥ 0.65
and the KL within budget. Several rounds: the oracle's win rate over the initial policy round by round
(the learning curve) and the final policy against round 1's, head to head on the same held-out prompts
(the oracle on the answers each round's evaluation sampled); `pass` is the final round ≥ round 1 + 0.07
and ≥ 0.60 head to head. Results go to OUT/results.json and markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.judges import JUDGES
from benchmarks.loop_runs import run_loop, split_passthrough

GAIN, HEAD_TO_HEAD = 0.07, 0.60


def run_one(judge: str, seed: int, out: Path, config: str, extra: list[str]) -> dict:
    folder = out / f"{judge}-seed{seed}"
    done, seconds = run_loop(JUDGES.get(judge, judge), seed, folder, extra, config)
    if done.returncode != 0:
        return {"judge": judge, "seed": seed, "error": done.stderr.strip().splitlines()[-1:],
                "seconds": seconds}
    return {**read_run(folder, JUDGES.get(judge, judge)), "judge": judge, "seed": seed, "seconds": seconds,
            "summary": done.stdout.strip().splitlines()[-1]}


def read_run(folder: Path, judge_spec: str) -> dict:
    """What a finished loop run in `folder` achieved, round by round (see the module's docstring)."""
    state = json.loads((folder / "loop_state.json").read_text())
    cfg = state["config"]
    rounds = {int(r): s for r, s in state["rounds"].items() if "evaluation" in s}
    kept = max([r for r, s in rounds.items() if s.get("kept", True)] or [0])
    row = {"final_round": kept, "rounds_run": len(rounds), "budget": cfg["kl_budget"],
           "round_start": cfg.get("round_start", "retrain"),
           "warnings": [w for s in rounds.values() for w in s.get("warnings", [])],
           "rounds": {r: _round_figures(s) for r, s in sorted(rounds.items())}}
    if kept:
        e = rounds[kept]["evaluation"]["initial"]
        row.update({k: e[k] for k in ("judge_win_rate", "judge_interval", "reward_win_rate",
                                      "reward_interval", "kl", "kl_interval", "prompts")})
        row["labelers"] = e.get("labelers")
        row["wins_ties_losses"] = e.get("judge_wins_ties_losses")
        within = (rounds[kept].get("kl_guard", {}).get("kl_upper", e["kl"]) <= row["budget"]
                  if row["round_start"] == "stack" else e["kl"] <= row["budget"])
        row["pass"] = e["judge_win_rate"] >= 0.75 and e["judge_interval"][0] >= 0.65 and within
    else:
        row.update(judge_win_rate=0.5, judge_interval=[0.5, 0.5], kl=0.0, reward_win_rate=None,
                   labelers=None, **{"pass": False})
    if len(rounds) > 1 and 1 in rounds:
        row["head_to_head"] = {r: head_to_head(folder, cfg, judge_spec, r, 1) for r in rounds if r > 1}
        first, final = rounds[1]["evaluation"]["initial"], rounds[max(rounds)]["evaluation"]["initial"]
        h2h = row["head_to_head"][max(rounds)]["win_rate"]
        row["pass"] = final["judge_win_rate"] >= first["judge_win_rate"] + GAIN and h2h >= HEAD_TO_HEAD
    return row


def _round_figures(state: dict) -> dict:
    e = state["evaluation"]
    figures = {"judge_win_rate": e["initial"]["judge_win_rate"],
               "judge_interval": e["initial"]["judge_interval"],
               "reward_win_rate": e["initial"]["reward_win_rate"], "kl": e["initial"]["kl"],
               "kept": state.get("kept", True), "labels": state["labels"]["labels"]}
    for name in ("initial", "previous"):
        if "labelers" in e.get(name, {}):
            lab = e[name]["labelers"]
            figures[f"labelers_vs_{name}"] = {k: lab[k] for k in ("win_rate", "interval", "labels")}
    guard = state.get("kl_guard")
    if guard:
        figures["guard"] = {"scale": guard["scale"], "kl_upper": guard.get("kl_upper", guard["kl"]),
                            "against": guard.get("against", 0)}
    return figures


def head_to_head(folder: Path, cfg: dict, judge_spec: str, r: int, against: int) -> dict:
    """The oracle judge (temperature 0) on round r's held-out answers against round `against`'s, prompt
    by prompt (the first answer each evaluation sampled), in random order: the win rate with its 95%
    Wilson interval."""
    from align.evaluate import win_rate_from_judge
    from align.judges import load_judge
    from align.loop.prompts import split_prompts

    _, heldout = split_prompts(cfg["prompts"], cfg.get("heldout_prompts"),
                               first_turn=cfg.get("prompt_turns") == "first",
                               max_heldout=cfg.get("max_heldout", 0))

    def answers(k: int) -> list[str]:
        lines = (folder / f"round-{k}" / "heldout-samples.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["text"] for line in lines]

    result = win_rate_from_judge(load_judge(judge_spec), heldout, answers(r), answers(against), seed=r)
    return {k: result[k] for k in ("win_rate", "interval", "n")}


def _fmt(value: float | None, interval=None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else f"{value:.2f}"


def table(rows: list[dict]) -> str:
    lines = ["| judge | seed | labelers' win rate [95%] (labels) | oracle win rate [95%] "
             "| wins / ties / losses | RM win rate | KL (budget) | final round | warnings | time | pass |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['judge']} | {r['seed']} | error: {r['error']} | | | | | | | "
                         f"{r['seconds'] / 60:.1f} min | no |")
            continue
        lab = r.get("labelers")
        labelers = f"{_fmt(lab['win_rate'], lab['interval'])} ({lab['labels']})" if lab else "–"
        counts = " / ".join(map(str, r.get("wins_ties_losses") or ["–"] * 3))
        lines.append(f"| {r['judge']} | {r['seed']} | {labelers} "
                     f"| **{_fmt(r['judge_win_rate'], r['judge_interval'])}** "
                     f"| {counts} | {_fmt(r.get('reward_win_rate'))} | {r['kl']:.2f} ({r['budget']:g}) "
                     f"| {r['final_round']} | {len(r['warnings'])} | {r['seconds'] / 60:.1f} min "
                     f"| {'yes' if r['pass'] else 'no'} |")
    return "\n".join(lines)


def rounds_table(rows: list[dict]) -> str:
    """The learning curve of each multi-round run: per round, the oracle's and the labelers' win rates over
    the initial policy, the labels so far, the KL, and the round against round 1 head to head."""
    lines = ["| judge | seed | round | labels so far | oracle vs initial [95%] | labelers vs initial [95%] "
             "| labelers vs previous kept | oracle vs round 1 [95%] | KL to initial "
             "| guard: scale, KL upper (vs round) | kept |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row or row.get("rounds_run", 1) < 2:
            continue
        for r, f in row["rounds"].items():
            h2h = row["head_to_head"].get(r) if r > 1 else None
            lab, prev, guard = f.get("labelers_vs_initial"), f.get("labelers_vs_previous"), f.get("guard")
            held = f"{guard['scale']:.2f}, {guard['kl_upper']:.2f} ({guard['against']})" if guard else "–"
            lines.append(
                f"| {row['judge']} | {row['seed']} | {r} | {f['labels']} "
                f"| {_fmt(f['judge_win_rate'], f['judge_interval'])} "
                f"| {_fmt(lab['win_rate'], lab['interval']) if lab else '–'} "
                f"| {_fmt(prev['win_rate'], prev['interval']) if prev else '–'} "
                f"| {_fmt(h2h['win_rate'], h2h['interval']) if h2h else '–'} | {f['kl']:.2f} "
                f"| {held} "
                f"| {'yes' if f['kept'] else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv, extra = split_passthrough(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judges", default=",".join(JUDGES),
                        help="comma-separated names (benchmarks/judges.py) or module:function specs")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--config", default="recipes/demo.yaml")
    parser.add_argument("--out", default="outputs/loop-judges")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for judge in args.judges.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows.append(run_one(judge, seed, out, args.config, extra))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
            (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"\npython -m benchmarks.loop_judges {' '.join([*argv, *(['--', *extra] if extra else [])])}\n")
    print(table(rows))
    if any(r.get("rounds_run", 1) > 1 for r in rows):
        print("\n" + rounds_table(rows))
    passed = sum(bool(r.get("pass")) for r in rows)
    bar = (f"final round >= round 1 + {GAIN}, >= {HEAD_TO_HEAD} head to head"
           if any(r.get("rounds_run", 1) > 1 for r in rows)
           else "win rate >= 0.75, lower bound >= 0.65, KL within budget")
    print(f"\n{passed} of {len(rows)} runs pass ({bar})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
