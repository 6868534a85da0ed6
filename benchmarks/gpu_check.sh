#!/usr/bin/env bash
# The prepared GPU check: every GPU path (4-bit QLoRA SFT, reward, DPO and PPO steps, bf16, vLLM
# rollouts) with memory and speed per step in one table, in at most 8 minutes on one GPU, offline.
#   bash benchmarks/gpu_check.sh            # from the repository root, with the project's Python
# Record the table in docs/benchmarks.md. Without a GPU it says what it would check.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
missing=$("$PY" - <<'PYCODE'
import importlib.util
need = ["torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "vaderSentiment"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PYCODE
)
if [ -n "$missing" ]; then
    echo "gpu_check: missing Python packages: $missing (install the project: make install)"; exit 1
fi
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" -m benchmarks.gpu_check "$@"
