# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PIP_FIND_LINKS is emptied so pip takes torch from the registry, never the local CPU-only wheel
PIP := PIP_FIND_LINKS= $(BIN)/pip
STAMP := $(VENV)/.installed-dev
SUITE ?= suites/quick.toml
RESULTS ?= results

.PHONY: demo test lint venv clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/python run_bench.py run $(SUITE) --results $(RESULTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/toy_nll.py
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/metric_cost.py

clean:
	rm -rf $(VENV) results/*/
