# The two commands of the README: `make demo` and `make test`.
# `make test-fast`: the unit tests (tests/unit) and the layer contract, in under a minute.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint format bench bench-manager wheel clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch==2.13.0 is the CPU wheel these machines keep on disk; elsewhere pip takes
# the plain wheel from PyPI. Installed first so that no dependency pulls another build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "torch==2.13.0" || $(BIN)/pip install --quiet "torch>=2.4"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/n2n-core run presets/quickstart.yaml

test: setup
	$(BIN)/ruff check n2n_core n2n_tui tests benchmarks
	$(BIN)/ruff format --check n2n_core n2n_tui tests benchmarks
	$(BIN)/python -m pytest

# One concept's tests are one folder: `$(BIN)/python -m pytest tests/unit/runs`.
# tests/e2e (real processes, training for a while) and tests/tui run in `make test`;
# tests/e2e/test_installed.py builds the wheel, installs it into a fresh virtual
# environment (no network: the installed dependencies are reused) and runs
# `n2n-core run quickstart`, `presets`, `infer` and the TUI from an empty folder.
test-fast: setup
	$(BIN)/python -m pytest tests/unit tests/test_layering.py

format: setup
	$(BIN)/ruff format n2n_core n2n_tui tests benchmarks
	$(BIN)/ruff check --fix n2n_core n2n_tui tests benchmarks

bench: setup
	$(BIN)/n2n-core bench

# What the manager costs (needs tmux): the watched run, 1,000/10,000 runs, replay, live runs.
# BASELINE=../other-checkout/.venv/bin/python measures another version side by side.
bench-manager: setup
	$(BIN)/python benchmarks/bench_manager.py $(if $(BASELINE),--baseline-python $(BASELINE))

# The wheel (built-in presets and models inside) into dist/: `pip install dist/n2n-*.whl`.
wheel: setup
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation --no-index -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info
