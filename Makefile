# Every target builds .venv on first use, installing exactly the versions in constraints.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_QUIET := --quiet --disable-pip-version-check

export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install test lint format constraints clean demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) -c constraints.txt -e '.[test]'
	touch $@

test: install
	bin/ensure-postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-verify the pins: a fresh virtualenv, the declared ranges, then freeze what pip chose.
constraints:
	rm -rf .venv-pins
	$(PYTHON) -m venv .venv-pins
	.venv-pins/bin/python -m pip install $(PIP_QUIET) -e '.[test]'
	{ sed -n '1,2p' constraints.txt; .venv-pins/bin/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .venv-pins

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

demo: install
	$(BIN)/python demo/run.py
