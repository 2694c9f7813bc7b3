# The two commands: `make run` sets up and serves, `make test` sets up and tests.
# Everything installs into .venv from the pinned requirements files.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1

.DEFAULT_GOAL := help
.PHONY: help venv venv-dev run test lint format bench serve clean

help:
	@echo "make run     install, migrate, create the admin account, serve on http://$(HOST):$(PORT)"
	@echo "make test    install test tools, lint, run the whole test suite"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make serve   production-style: gunicorn, DJANGO_DEBUG=0 (see README)"
	@echo "make lint    ruff check + ruff format --check;  make format  to fix"

# Stamp files make re-runs instant until a requirements file changes.
$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "proxmoxer needs Python 3.11 or newer; set PYTHON=python3.X")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed: $(VENV)/.python-ok requirements.txt
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py bootstrap_admin
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv-dev lint
	$(BIN)/python -m pytest

# Every benchmarks/bench_*.py prints its own table; the README quotes them.
bench: venv-dev
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; echo; \
	done

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
