# The two commands of the quick start: `make run` (the main job) and `make test` (the suite).
# Each does its own set-up on a fresh machine. PIP_CONSTRAINT pins the CPU torch wheel that lies
# on disk on the development and CI machines; elsewhere pip resolves torch as usual.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q -c constraints-cpu.txt
RUN_ARGS ?=

.PHONY: run test setup setup-test system-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.setup: pyproject.toml constraints-cpu.txt | $(BIN)/python
	$(PIP) -e ".[dev]"
	touch $@

$(VENV)/.setup-test: $(VENV)/.setup
	$(PIP) -e ".[dev,data,gym,lora,tensorboard,bench,ray,envs]"
	touch $@

setup: $(VENV)/.setup

setup-test: $(VENV)/.setup-test system-deps

# Coq checks proofs; Chromium renders the HTML report in its test. Debian packages, as root.
system-deps:
	@if ! command -v coqc >/dev/null || ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coq chromium >/dev/null; \
		else echo "install Debian's coq and chromium (as root) for the Coq verifier and report tests"; fi; \
	fi

run: setup
	$(BIN)/rlvr run $(RUN_ARGS)

test: setup-test
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs
