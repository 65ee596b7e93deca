# Every target builds .venv on first use, installing exactly the versions in constraints.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_QUIET := --quiet --disable-pip-version-check

export PREFECT_SERVER_ANALYTICS_ENABLED := false

# The local Prefect stack: `make server`, then `make setup deploy worker` in other terminals.
PREFECT_PORT ?= 4200
PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
# The server's own database: SQLite in ~/.prefect by default; for fleets and many workers,
# PostgreSQL: make server PREFECT_SERVER_DB=postgresql+asyncpg://prefect@db/prefect
PREFECT_SERVER_DB ?=
# How many runs one worker takes at once (empty: no limit); start as many workers as you like.
WORKER_LIMIT ?=

.PHONY: install test lint format constraints clean demo server worker deploy setup wheel-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) -c constraints.txt -e '.[test]'
	touch $@

# Three workers on two cores (the tests wait on I/O a lot): each has its own temporary Prefect
# API and its own databases.
test: install
	bin/ensure-postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 4 --dist worksteal

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

# The library alone: its wheel in a fresh virtualenv outside the checkout, --help, a deployment.
wheel-check: install
	bin/check-wheel

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

demo: install
	$(BIN)/python demo/run.py

# The port goes through the environment: `prefect server start --port` alone leaves the UI
# talking to 4200.
# The database URL goes through the environment too, never onto a command line make echoes.
ifneq ($(PREFECT_SERVER_DB),)
server: export PREFECT_API_DATABASE_CONNECTION_URL := $(PREFECT_SERVER_DB)
endif
server: install
	PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
	PREFECT_UI_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api \
	$(BIN)/prefect server start --analytics-off

setup: install
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/autopr-migrate setup

deploy: install
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/prefect --no-prompt deploy --all

worker: install
	PREFECT_API_URL=$(PREFECT_API_URL) $(BIN)/prefect worker start --pool migrations --type process \
	  $(if $(WORKER_LIMIT),--limit $(WORKER_LIMIT))
