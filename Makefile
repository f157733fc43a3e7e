# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PIP_FIND_LINKS is emptied so pip takes torch from the registry, never the local CPU-only wheel
PIP := PIP_FIND_LINKS= $(BIN)/pip
STAMP := $(VENV)/.installed-dev
SUITE ?= suites/quick.toml
RESULTS ?= results

.PHONY: demo test lint venv clean bench chromium fashion-mnist

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Headless Chromium (Debian package) for the HTML report test: installed when missing and running as
# root with apt-get; otherwise, or when the install fails, that one test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the Chromium report test will skip"; \
	  else echo "chromium not installed (needs root and apt-get): the Chromium report test will skip"; fi; }

# Real image data for the dataset tests: Debian's dataset-fashion-mnist (the published Fashion-MNIST
# files), installed the same way; without it the real-data test skips and says why.
fashion-mnist:
	@[ -d /usr/share/datasets/fashion-mnist ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	      || echo "dataset-fashion-mnist could not be installed: the real Fashion-MNIST test will skip"; \
	  else echo "dataset-fashion-mnist not installed (needs root and apt-get): the real Fashion-MNIST test will skip"; fi; }

test: $(STAMP) chromium fashion-mnist
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
