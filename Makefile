# Two entry points for a fresh clone (both create .venv and install the pinned environment):
#   make run   - the whole workflow on the embedded synthetic data set
#   make test  - the test suite (what CI runs, through .ci/run)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

run: setup
	$(BIN)/snakemake --cores all --resources gpu=1

test: setup
	$(BIN)/python -m pytest
