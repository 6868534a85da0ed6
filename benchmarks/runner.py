"""Time a baseline command and ours alternately, several times; report medians and ratios.

    python -m benchmarks.runner --name "align --help" --repeat 7 \
        --baseline "python -c 'import torch, transformers'" --ours "align --help"

Peak memory is each child's own maximum resident set size (`os.wait4`), so runs never mix. The
runs alternate (baseline, ours, baseline, ...) so that slow phases of a noisy machine hit both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str = ""


def run_once(command: str, env: dict | None = None) -> Run:
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, shell=True, stdout=out, stderr=err,
                                env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS alone
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"command failed with status {code}: {command}\n{stderr[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, code, stdout)


def compare(name: str, baseline: str, ours: str, repeat: int = 5, warmup: int = 1) -> dict:
    for _ in range(warmup):
        run_once(baseline)
        run_once(ours)
    runs: dict[str, list[Run]] = {"baseline": [], "ours": []}
    for _ in range(repeat):
        runs["baseline"].append(run_once(baseline))
        runs["ours"].append(run_once(ours))
    med = {k: {"seconds": statistics.median(r.seconds for r in v),
               "peak_rss_mb": statistics.median(r.peak_rss_mb for r in v)} for k, v in runs.items()}
    return {
        "name": name, "baseline": baseline, "ours": ours, "repeat": repeat, "median": med,
        "time_ratio": med["ours"]["seconds"] / med["baseline"]["seconds"],
        "memory_ratio": med["ours"]["peak_rss_mb"] / med["baseline"]["peak_rss_mb"],
        "runs": {k: [asdict(r) for r in v] for k, v in runs.items()},
    }


def report(result: dict) -> str:
    m = result["median"]
    return (f"{result['name']}: "
            f"baseline {m['baseline']['seconds']:.3f} s / {m['baseline']['peak_rss_mb']:.0f} MB, "
            f"ours {m['ours']['seconds']:.3f} s / {m['ours']['peak_rss_mb']:.0f} MB "
            f"(medians of {result['repeat']}); time ratio {result['time_ratio']:.3f}, "
            f"memory ratio {result['memory_ratio']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--baseline", required=True, help="Shell command of the baseline.")
    parser.add_argument("--ours", required=True, help="Shell command of ours.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", help="Also write the full result (every run) to this file.")
    args = parser.parse_args(argv)
    result = compare(args.name, args.baseline, args.ours, args.repeat, args.warmup)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def alternate_sides(side_command: str, sides: tuple[str, ...], repeat: int, metrics: tuple[str, ...],
                    env: dict | None = None) -> tuple[dict, dict]:
    """Run `f"{side_command} {side}"` for each side, alternately, `repeat` times. Each run prints one JSON
    line last; its peak RSS is added as `peak_rss_mb`. Returns (all rows by side, medians by side)."""
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for _ in range(repeat):
        for side in sides:  # alternate, so a slow phase of the machine hits every side
            run = run_once(f"{side_command} {side}", env=env)
            row = json.loads(run.stdout.strip().splitlines()[-1])
            row["peak_rss_mb"] = run.peak_rss_mb
            results[side].append(row)
    medians = {s: {m: statistics.median(r[m] for r in rows) for m in (*metrics, "peak_rss_mb")}
               for s, rows in results.items()}
    return results, medians
