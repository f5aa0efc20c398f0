# Two commands set everything up on a fresh machine with Python 3.11:
#   make run    venv, install, migrate, demo data (once), serve on :5000 (SQLite)
#   make test   venv, install, the whole suite (SQLite; again on PostgreSQL
#               when TEST_DATABASE_URL is set)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := wsgi.py
PYTEST_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test test-sqlite test-postgres bench soak lint format venv chromium wrk serve clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

instance/.demo-loaded: $(STAMP)
	@mkdir -p instance
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	@touch instance/.demo-loaded

run: $(STAMP) instance/.demo-loaded
	$(BIN)/flask db upgrade
	$(BIN)/flask run --host $(HOST) --port $(PORT)

# Production-like: PostgreSQL + gunicorn (set DATABASE_URL and SECRET_KEY).
serve: $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn --workers 4 --bind $(HOST):$(PORT) wsgi:app

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "warning: could not install chromium; browser tests will be skipped"; }

test: $(STAMP) chromium
	$(MAKE) test-sqlite
	@if [ -n "$$TEST_DATABASE_URL" ]; then $(MAKE) test-postgres; fi

test-sqlite: $(STAMP)
	env -u TEST_DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: $(STAMP)
	@test -n "$$TEST_DATABASE_URL" || { echo "set TEST_DATABASE_URL"; exit 2; }
	$(BIN)/python -m pytest $(PYTEST_ARGS)

wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "Installing Debian's wrk for the HTTP benchmark"; \
	  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq wrk) >/dev/null 2>&1 || \
	  echo "warning: could not install wrk; the HTTP benchmark will be skipped"; }

BENCH_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/bench
bench: $(STAMP) wrk
	@createdb -h 127.0.0.1 -U postgres bench 2>/dev/null || true
	BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python -m pytest tests/bench -s -q -p no:cacheprovider --override-ini addopts=

# HTTP bank test: gunicorn (4 workers, one SIGKILLed every 5 s) under 16 clients moving money for
# SOAK_SECONDS, then the ledger, the money and the idempotency keys are checked. Not part of `make test`
# (which runs a short version on PostgreSQL). Its database's schema is dropped and rebuilt.
SOAK_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/soak
SOAK_SECONDS ?= 60
SOAK_STRICT ?= 1
soak: $(STAMP)
	@createdb -h 127.0.0.1 -U postgres soak 2>/dev/null || true
	TEST_DATABASE_URL=$(SOAK_DATABASE_URL) SOAK_SECONDS=$(SOAK_SECONDS) SOAK_STRICT=$(SOAK_STRICT) $(BIN)/python -m pytest tests/soak -s

lint: $(STAMP)
	$(BIN)/ruff check marketplace tests
	$(BIN)/ruff format --check marketplace tests

format: $(STAMP)
	$(BIN)/ruff format marketplace tests
	$(BIN)/ruff check --fix marketplace tests

clean:
	rm -rf $(VENV) instance/*.db instance/.demo-loaded
