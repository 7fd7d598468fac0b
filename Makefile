# hyperparameter_system: `make demo` runs the quickstart matrix, `make test` runs the test suite.
# Both create .venv when missing and install only when pyproject.toml changed.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export WANDB_SILENT ?= true

.PHONY: help install demo test test-fast lint data bench gpu-check clean chromium slurm
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray,lightning,hydra]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev, ray, lightning and hydra extras

data: $(STAMP)  ## write the embedded digits dataset into data/
	$(BIN)/python codes/prepare_data.py --out data

demo: data  ## run the quickstart matrix on the embedded data and show the summary
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python hyperparameter_system/experiment_runner.py --config examples/quickstart.yaml --all
	$(BIN)/python hyperparameter_system/experiment_runner.py --config examples/quickstart.yaml --combine-best --summary --export html reports/quickstart.html

chromium:  ## Debian's chromium for the html-report screenshot test (best effort; it skips without)
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { timeout 300 apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { timeout 120 apt-get update -q >/dev/null 2>&1 && timeout 300 apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: the html screenshot test will be skipped"

slurm:  ## Debian's slurm-wlm and munge for the Slurm executor's tests (a single-node cluster; best effort)
	@command -v sbatch >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { timeout 300 apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || \
	    { timeout 120 apt-get update -q >/dev/null 2>&1 && timeout 300 apt-get install -y -q slurm-wlm munge >/dev/null 2>&1; }; }; } || \
	  echo "slurm-wlm not installed: the Slurm executor tests will be skipped"

test: data chromium slurm lint  ## lint (ruff, import layers), then the whole test suite
	$(BIN)/python -m pytest -q

test-fast: data  ## the suite without the slow end-to-end tests
	$(BIN)/python -m pytest -q -m 'not slow'

lint: $(STAMP)  ## ruff, and import-linter: the runner's layers and what it never imports
	$(BIN)/ruff check .
	PYTHONPATH=codes $(BIN)/lint-imports

bench: data  ## print the benchmark figures (parallel efficiency with the Ray overhead: ~40 s)
	for b in bench/*.py; do \
	  case $$b in bench/parallel_efficiency.py) args=--ray ;; bench/racing.py) args=--e2e ;; *) args= ;; esac; \
	  $(BIN)/python $$b $$args || exit 1; done

gpu-check: data  ## the CUDA paths on a real GPU, one line per check ("no GPU: skipped" without)
	$(BIN)/python tools/gpu_check.py

clean:  ## remove generated runs, temp configs and the ledger (keeps .venv and data)
	rm -rf runs temp_configs/*.yaml experiments.db reports
