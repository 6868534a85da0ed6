"""What the loop benchmarks share: their own flags before `--` and the loop's after it, and one fresh
`align loop` process per run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["split_passthrough", "run_loop"]


def split_passthrough(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """(the benchmark's own arguments, the `align loop` flags given after `--`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def run_loop(judge: str, seed: int, folder: Path, extra: list[str],
             config: str = "recipes/demo.yaml") -> tuple[subprocess.CompletedProcess, float]:
    """`align loop --config CONFIG --judge JUDGE --seed SEED --output_dir FOLDER EXTRA...` in a fresh
    process; returns the finished process and its wall time in seconds."""
    command = [sys.executable, "-m", "align.cli", "loop", "--config", config, "--judge", judge,
               "--seed", str(seed), "--output_dir", str(folder), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    return done, time.perf_counter() - start
