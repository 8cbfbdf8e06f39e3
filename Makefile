# Two entry points for a fresh clone (both create .venv and install the pinned environment):
#   make run    - the whole workflow on the embedded synthetic data set
#   make report - its HTML report (results/report.html), after make run
#   make test   - the test suite (what CI runs, through .ci/run)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run report test
setup: $(VENV)/.installed

# pip's own lines show the progress (a few minutes; torch is the largest package).
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@echo "Installing the environment into $(VENV) (a few minutes) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar off -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

run: setup
	$(BIN)/snakemake --cores all --resources gpu=1

report: setup
	$(BIN)/snakemake --report results/report.html
	@echo "Open results/report.html in a browser."

test: setup
	$(BIN)/python -m pytest
