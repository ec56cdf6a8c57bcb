SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_DATABASE_URL := postgres://downloads:downloads@127.0.0.1:5432/downloads
PYTEST_ARGS ?=

.PHONY: help venv install run lint fmt test test-sqlite test-postgres ensure-chromium ensure-postgres ensure-redis bench bench-quick

help:
	@echo "make run            migrate, seed demo data, serve on http://127.0.0.1:8000"
	@echo "make test           lint + pytest on SQLite, then on PostgreSQL (PYTEST_ARGS=... passed to pytest)"
	@echo "make test-sqlite    only the SQLite pytest run"
	@echo "make test-postgres  only the PostgreSQL pytest run"
	@echo "make lint | fmt     ruff format/check"
	@echo "make bench | bench-quick"
	@echo "make venv           create .venv and pip install -e '.[dev]'"

# The venv's python: created once. On Debian's own python3 the venv module needs
# the python3-venv package (ensurepip).
$(VENV_PY):
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null; then \
		echo "installing python3-venv"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
	fi
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(VENV_PY)
	$(VENV_PY) -m pip install -e '.[dev]'
	touch $@

venv install: $(STAMP)

run: $(STAMP)
	mkdir -p var
	DJANGO_DEBUG=1 $(VENV_PY) manage.py migrate --noinput
	DJANGO_DEBUG=1 $(VENV_PY) manage.py seed_demo
	@# The background worker (webhooks, backfills, buyer emails) runs beside the server and
	@# stops with it.
	DJANGO_DEBUG=1 $(VENV_PY) manage.py db_worker --no-reload & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	DJANGO_DEBUG=1 $(VENV_PY) manage.py runserver 127.0.0.1:8000

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

ensure-chromium:
	bash scripts/ensure_chromium.sh

ensure-postgres:
	bash scripts/ensure_postgres.sh

# Debian's redis-server binary: the suite starts its own server for the Redis cache tests.
ensure-redis:
	bash scripts/ensure_redis.sh

test: $(STAMP) lint ensure-chromium ensure-postgres ensure-redis
	@echo "=== pytest on SQLite ==="
	env -u DATABASE_URL $(VENV_PY) -m pytest -q -m "not postgres" $(PYTEST_ARGS)
	@echo "=== pytest on PostgreSQL ==="
	DATABASE_URL=$(PG_DATABASE_URL) $(VENV_PY) -m pytest -q $(PYTEST_ARGS)

test-sqlite: $(STAMP) ensure-chromium ensure-redis
	env -u DATABASE_URL $(VENV_PY) -m pytest -q -m "not postgres" $(PYTEST_ARGS)

test-postgres: $(STAMP) ensure-chromium ensure-postgres ensure-redis
	DATABASE_URL=$(PG_DATABASE_URL) $(VENV_PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV_PY) -m bench

bench-quick: $(STAMP)
	$(VENV_PY) -m bench --quick
