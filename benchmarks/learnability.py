"""The loop's learnability check on finished runs: for each round of each run folder, the two-fold
accuracy that `learnability_check` computes on the labels so far (two reward models, each fit with the
run's reward settings on half the prompts' labels, scored on the other half), and whether it is above
chance, that is, whether the round may use the reward model's pairs and the guard's scaling up.

    .venv/bin/python -m benchmarks.learnability outputs/demo outputs/noisy05/vader-seed0 outputs/hh

Prints a markdown table; `--json FILE` writes the rows too. Run alone on the machine (reward-model fits).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import typing
from pathlib import Path


def rows_of(folder: Path, rounds: list[int] | None) -> list[dict]:
    from align.loop import LoopConfig
    from foundation.recipe import load_config
    from labeling_app import LabelStore
    from labeling_app.export import aggregate
    from reward.learnability import cross_fit_accuracy

    state = json.loads((folder / "loop_state.json").read_text())
    stored = _known(LoopConfig, state["config"])
    config = load_config(LoopConfig, overrides={**stored, "output_dir": str(folder)})
    store = LabelStore(f"sqlite:///{folder}/labels.db")

    def config_for(data: str, out: str):
        return config.reward_config(data=data, output_dir=out)

    rows = []
    for r in rounds or sorted(int(k) for k in state["rounds"]):
        labels = [x for k in range(1, r + 1) for s in ("active", "random")
                  for x in aggregate(store, batch=f"round-{k}/{s}")[0]]
        if not labels:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            check = cross_fit_accuracy(labels, config_for, tmp, seed=config.seed + r)
        rows.append({"run": str(folder), "round": r, "judge": config.judge,
                     "judge_temperature": config.judge_temperature, **check})
    return rows


def _known(cls: type, stored: dict) -> dict:
    """The keys of a run's stored config that `cls` still has (a run made by an older version may hold
    fields since removed), sections alike."""
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    return {k: _known(hints[k], v) if dataclasses.is_dataclass(hints[k]) else v
            for k, v in stored.items() if k in fields}


def table(rows: list[dict]) -> str:
    lines = ["| run | round | judge (temperature) | labels | two-fold accuracy [95%] | above chance |",
             "|---|---|---|---|---|---|"]
    for x in rows:
        low, high = x["interval"]
        lines.append(f"| {x['run']} | {x['round']} | {x['judge']} ({x['judge_temperature']:g}) | "
                     f"{x['n']} | {x['accuracy']:.2f} [{low:.2f}, {high:.2f}] | "
                     f"{'yes' if x['above_chance'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="`align loop` output folders")
    parser.add_argument("--rounds", default=None, help="comma-separated rounds (default: every round)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rounds = [int(r) for r in args.rounds.split(",")] if args.rounds else None
    rows = [row for run in args.runs for row in rows_of(run, rounds)]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
