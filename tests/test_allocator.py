"""The allocator setting: on glibc, freed large blocks stay in the process (no page faults on reuse)."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
from foundation.allocator import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory() and keep_freed_memory()      # takes effect, and again is a no-op
import torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):                                          # 72 MB a step, freed at once
    x, y = torch.ones(40 << 20, dtype=torch.uint8), torch.ones(8 << 20, dtype=torch.float32)
    del x, y
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_freed_blocks_are_reused_without_faulting_pages_in_again():
    faults = {mode: int(subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("off", "on")}
    pages = 40 * (72 << 20) // 4096
    assert faults["off"] > 0.9 * pages               # each block mapped and faulted in anew
    assert faults["on"] < 0.2 * pages                # the first step's pages, reused
