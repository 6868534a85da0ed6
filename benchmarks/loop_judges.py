"""Is the loop robust to the judge? The demo recipe with judges of different kinds, seed by seed.

    .venv/bin/python -m benchmarks.loop_judges                       # 4 judges x seed 0, demo recipe
    .venv/bin/python -m benchmarks.loop_judges --judges target_length --seeds 0,1 -- --rm_pairs

Each run is a fresh `align loop --config recipes/demo.yaml --judge SPEC --seed S` process (flags after
`--` go to every run). The table: the final kept policy's gold win rate over the initial policy on
the held-out prompts with its 95% interval, the reward model's (proxy) win rate, KL per response
against the budget, warnings, wall time; `pass` is win rate >= 0.75, lower bound >= 0.65, KL within
budget. Results go to OUT/results.json and a markdown table on stdout (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.judges import JUDGES
from benchmarks.loop_runs import run_loop, split_passthrough


def run_one(judge: str, seed: int, out: Path, config: str, extra: list[str]) -> dict:
    folder = out / f"{judge}-seed{seed}"
    done, seconds = run_loop(JUDGES.get(judge, judge), seed, folder, extra, config)
    if done.returncode != 0:
        return {"judge": judge, "seed": seed, "error": done.stderr.strip().splitlines()[-1:],
                "seconds": seconds}
    state = json.loads((folder / "loop_state.json").read_text())
    rounds = {int(r): s for r, s in state["rounds"].items()}
    kept = max([r for r, s in rounds.items() if s.get("kept", True)] or [0])
    row = {"judge": judge, "seed": seed, "seconds": seconds, "final_round": kept,
           "summary": done.stdout.strip().splitlines()[-1],
           "budget": state["config"]["kl_budget"],
           "warnings": [w for s in rounds.values() for w in s.get("warnings", [])],
           "rounds": {r: {k: s["evaluation"]["initial"][k] for k in
                          ("judge_win_rate", "judge_interval", "reward_win_rate", "kl")}
                      for r, s in rounds.items()}}
    if kept:
        e = rounds[kept]["evaluation"]["initial"]
        row.update({k: e[k] for k in ("judge_win_rate", "judge_interval", "reward_win_rate",
                                      "reward_interval", "kl", "kl_interval", "prompts")})
        row["wins_ties_losses"] = e.get("judge_wins_ties_losses")
        row["pass"] = (e["judge_win_rate"] >= 0.75 and e["judge_interval"][0] >= 0.65
                       and e["kl"] <= row["budget"])
    else:
        row.update(judge_win_rate=0.5, judge_interval=[0.5, 0.5], kl=0.0, reward_win_rate=None,
                   **{"pass": False})
    return row


def table(rows: list[dict]) -> str:
    lines = ["| judge | seed | gold win rate [95%] | wins / ties / losses | RM win rate | KL (budget) "
             "| final round | warnings | time | pass |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['judge']} | {r['seed']} | error: {r['error']} | | | | | | "
                         f"{r['seconds'] / 60:.1f} min | no |")
            continue
        low, high = r["judge_interval"]
        rm = f"{r['reward_win_rate']:.2f}" if r.get("reward_win_rate") is not None else "–"
        counts = " / ".join(map(str, r.get("wins_ties_losses") or ["–"] * 3))
        lines.append(f"| {r['judge']} | {r['seed']} | **{r['judge_win_rate']:.2f}** "
                     f"[{low:.2f}, {high:.2f}] | {counts} | {rm} | "
                     f"{r['kl']:.2f} ({r['budget']:g}) | {r['final_round']} | {len(r['warnings'])} | "
                     f"{r['seconds'] / 60:.1f} min | {'yes' if r['pass'] else 'no'} |")
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
    passed = sum(bool(r.get("pass")) for r in rows)
    print(f"\n{passed} of {len(rows)} runs pass (win rate >= 0.75, lower bound >= 0.65, KL within budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
