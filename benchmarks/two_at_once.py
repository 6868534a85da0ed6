"""Two heavy processes on the same cores: how much slower does sampling get, and what keeps it at the
cost of sharing (about 2x on 2 cores)?

    python -m benchmarks.two_at_once --answers 32 --tokens 48

Each process loads SmolLM2-135M (`builtin:smollm2-135m-instruct`) and samples `--answers` answers of
`--tokens` tokens with the fused engine, timed after loading. Each setting runs one process alone, then
two at once (started together), with the environment named; the table gives the sampling seconds
(two at once: the slower of the two) and the ratio to alone under the same setting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORK = """
import json, sys, time
from align.policy import Policy
from align.loop.prompts import split_prompts
policy = Policy.from_pretrained("builtin:smollm2-135m-instruct")
prompts = split_prompts("builtin:reviews", None)[0][:{answers}]
policy.generate(prompts[:2], max_new_tokens=4, seed=0)            # warm up: kernels, caches
start = time.perf_counter()
policy.generate(prompts, max_new_tokens={tokens}, seed=1, temperature=0.7, batch_size={answers})
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""

SETTINGS = {
    "default (2 threads each, OpenMP spin-waits)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread each (OMP_NUM_THREADS=1)": {"OMP_NUM_THREADS": "1"},
}


def run(n: int, env: dict, code: str) -> list[float]:
    """Start `n` copies of `code` together; the sampling seconds each reported."""
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(n)]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SystemExit(f"a sampling process failed (exit {p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1])["seconds"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--settings", default="", help="comma-separated setting numbers (1-based)")
    args = parser.parse_args()
    code = WORK.format(answers=args.answers, tokens=args.tokens)
    chosen = list(SETTINGS.items())
    if args.settings:
        chosen = [chosen[int(i) - 1] for i in args.settings.split(",")]
    print("| setting | alone (s) | two at once (s, the slower) | ratio |\n|---|---|---|---|")
    for name, env in chosen:
        alone = run(1, env, code)[0]
        time.sleep(2)
        both = max(run(2, env, code))
        print(f"| {name} | {alone:.1f} | {both:.1f} | {both / alone:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
