"""`align reward eval --model DIR --data FILE [--format ...] [--json] [--plot PNG]`."""

from __future__ import annotations

import json

from align.cli import ArgumentParser
from foundation.readers import FORMATS


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="align reward eval",
                            description="Evaluate a reward model on preference data.")
    parser.add_argument("--model", required=True, help="A folder written by `align reward train`.")
    parser.add_argument("--data", required=True,
                        help="Preference file (any format `align data convert` reads).")
    parser.add_argument("--format", choices=FORMATS, default="auto")
    parser.add_argument("--skip-invalid", "--skip_invalid", action="store_true")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=32)
    parser.add_argument("--plot", help="Write the reliability diagram here (default: MODEL/reliability.png).")
    parser.add_argument("--json", action="store_true", help="Print the whole report as JSON.")
    args = parser.parse_args(argv)

    from reward.evaluate import evaluate_file

    plot = args.plot or f"{args.model.rstrip('/')}/reliability.png"
    report = evaluate_file(args.model, args.data, args.format, plot=plot, batch_size=args.batch_size,
                           skip_invalid=args.skip_invalid)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"accuracy {report['accuracy']:.3f} on {report['pairs']} pairs ({report['ties']} ties excluded)")
    for bucket, row in report["accuracy_by_margin"].items():
        print(f"  margin {bucket}: {row['accuracy']:.3f} on {row['pairs']} pairs")
    if "tie_agreement" in report:
        print(f"ties: {report['tie_agreement']:.3f} judged near-indifferent (|P - 0.5| <= 0.1)")
    print(f"calibration: ECE {report['ece']:.3f}; reliability diagram: {report['reliability_png']}")
    shorter = report["accuracy_chosen_shorter"]
    print(f"length bias: corr(reward, length) {report['length_reward_correlation']:+.3f}; accuracy when the "
          f"chosen response is shorter: "
          f"{shorter['accuracy'] if shorter['accuracy'] is None else round(shorter['accuracy'], 3)} "
          f"on {shorter['pairs']} pairs")
    return 0
