# One command per task. `make run` and `make test` are the README's two commands: each creates
# the virtual environment in .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The HTTP API on http://127.0.0.1:8000 (docs at /docs): the embedded engine and SQLite, with
# their data in ./.tbledger. TBLEDGER_ENGINE_URL or TIGERBEETLE_ADDRESSES, and
# TBLEDGER_DATABASE_URL, point it at a TigerBeetle cluster and PostgreSQL instead.
run: $(STAMP)
	$(BIN)/tbledger serve

demo: $(STAMP)
	$(BIN)/tbledger demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/tbledger bench --out bench-results --docs docs/performance.md

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
