"""How the loop's blind evaluation stops: its false-positive rate under peeking, and the labels it takes.

    .venv/bin/python -m benchmarks.sequential_eval [--runs 10000] [--eval_labels 240]

Simulated evaluations, each a stream of labels (a win of the new policy 1, a tie ½, a loss 0) watched
after every label by `foundation.sequential.WinRateSequence` (the betting confidence sequence the loop
uses, bets sized for `eval_labels`), stopped as soon as the interval leaves ½ or at `eval_labels`:
- with no true difference (P(win) = P(loss), ties 20%): the share of evaluations that declare a winner
  (the false-positive rate, α = 0.05 promised), beside a 95% Wilson interval read after every label from
  the 10th on (what a naive loop would do);
- at true win rates from 0.55 to 0.9 (ties 20%): the share decided and the median labels to decide.
Prints a markdown table for docs/loop.md.
"""

from __future__ import annotations

import argparse
import random
import statistics

from foundation.sequential import WinRateSequence
from foundation.stats import wilson_interval


def one(rng: random.Random, p_win: float, p_tie: float, eval_labels: int) -> tuple[int, bool, bool]:
    """(labels used, decided by the sequence, decided by a Wilson interval peeked at after every label)."""
    seq = WinRateSequence(horizon=eval_labels)
    total, naive = 0.0, False
    for n in range(1, eval_labels + 1):
        u = rng.random()
        x = 1.0 if u < p_win else 0.5 if u < p_win + p_tie else 0.0
        total += x
        if not naive and n >= 10:
            low, high = wilson_interval(total / n, n)
            naive = low > 0.5 or high < 0.5
        if not seq.decided():
            seq.update(x)
    return seq.n, seq.decided(), naive


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--eval_labels", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    print(f"{args.runs} simulated evaluations per row, at most {args.eval_labels} labels, ties 20%\n")
    print("| true win rate | decided (sequence) | 95% interval | median labels when decided | "
          "decided (Wilson peeked at every label) |")
    print("|---|---|---|---|---|")
    for rate in (0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9):
        p_win = rate - 0.1                      # ties 0.2 count half: rate = p_win + 0.1
        runs = [one(rng, p_win, 0.2, args.eval_labels) for _ in range(args.runs)]
        decided = sum(d for _, d, _ in runs)
        low, high = wilson_interval(decided / args.runs, args.runs)
        labels = [n for n, d, _ in runs if d]
        median = f"{statistics.median(labels):.0f}" if labels else "–"
        print(f"| {rate:.2f} | {decided / args.runs:.4f} | [{low:.4f}, {high:.4f}] | {median} | "
              f"{sum(w for _, _, w in runs) / args.runs:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
