# The two commands: `make run` sets up and serves, `make test` sets up and tests.
# Everything installs into .venv from the pinned requirements files.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1
# make serve: gunicorn worker processes, and threads in each that run the
# application (requests to Proxmox can take seconds; threads keep one slow
# registration from holding a whole worker).
WORKERS ?= 4
THREADS ?= 4
# make serve: where gunicorn's workers keep their metrics for /metrics to sum
# (prometheus-client's multiprocess mode); emptied at every start.
PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/.prometheus-multiproc

.DEFAULT_GOAL := help
.PHONY: help venv venv-dev run test lint format bench screenshots serve worker clean

help:
	@echo "make run     install, migrate, create the admin account, serve on http://$(HOST):$(PORT)"
	@echo "make test    install test tools, lint, run the whole test suite (the schema fuzz run too;"
	@echo "             a quick run without it: .venv/bin/python -m pytest -m 'not fuzz')"
	@echo "make bench   run the benchmarks in benchmarks/"
	@echo "make screenshots  the README's dashboard pictures, taken by the browser test (docs/images/)"
	@echo "make serve   production-style: migrate, collectstatic, gunicorn with WORKERS=$(WORKERS) processes,"
	@echo "             DJANGO_DEBUG=0, CLUSTER_REPOSITORY=django, DATABASE_URL (docs/operations.md);"
	@echo "             /metrics summed over the workers (PROMETHEUS_MULTIPROC_DIR=$(PROMETHEUS_MULTIPROC_DIR))"
	@echo "make worker  background checks for make serve: a Celery worker with beat (Redis: CELERY_BROKER_URL)"
	@echo "make lint    ruff check + ruff format --check + mypy;  make format  to fix"

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

# Production-style, the way an operator runs it behind a TLS-terminating
# reverse proxy: DJANGO_DEBUG=0, the database backend, gunicorn. Needs
# DJANGO_SECRET_KEY and PROXMOXER_CREDENTIALS_KEYS, and DATABASE_URL
# (PostgreSQL to share the registry between hosts); docs/operations.md, "make serve".
# gunicorn's asyncio worker holds the connections and proxmoxer_site/serving.py
# reads each request whole before one of THREADS threads runs the app: a
# client that trickles or stalls its body holds no thread (docs/security.md).
# gunicorn's control socket is off: its one path per user would be taken
# over by a second instance on the same host.
serve: export DJANGO_DEBUG = 0
serve: export CLUSTER_REPOSITORY = django
serve: export PROXMOXER_SERVE_THREADS = $(THREADS)
serve: venv
	env -u PROMETHEUS_MULTIPROC_DIR $(BIN)/python manage.py migrate --noinput
	env -u PROMETHEUS_MULTIPROC_DIR $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	rm -rf "$(PROMETHEUS_MULTIPROC_DIR)" && mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)"
	PROMETHEUS_MULTIPROC_DIR="$(PROMETHEUS_MULTIPROC_DIR)" \
	exec $(BIN)/gunicorn 'proxmoxer_site.serving:application_from_settings()' \
		--worker-class asgi --bind $(HOST):$(PORT) --workers $(WORKERS) \
		--timeout 60 --no-control-socket --config python:proxmoxer_site.gunicorn_hooks

# The background checks beside `make serve` (PROXMOXER_MONITOR=celery): a
# Celery worker with beat, on Redis (CELERY_BROKER_URL). Several, on several
# hosts, share the work: claims in the database decide who checks what, so
# their duplicate beats are harmless. One task at a time (--pool solo); the
# checks inside it run PROXMOXER_CHECK_CONCURRENCY at once. Same settings as
# make serve (docs/operations.md, "Background checks").
worker: export DJANGO_DEBUG = 0
worker: export CLUSTER_REPOSITORY = django
worker: export PROXMOXER_MONITOR = celery
worker: venv
	exec $(BIN)/celery -A proxmoxer_site worker --beat --pool solo \
		--without-gossip --without-mingle --loglevel WARNING

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv-dev lint
	$(BIN)/python -m pytest

# Every benchmarks/bench_*.py prints its own table; docs/benchmarks.md quotes them.
bench: venv-dev
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; echo; \
	done

# The browser test takes them (Debian's chromium and chromium-driver).
screenshots: venv-dev
	PROXMOXER_SCREENSHOTS=docs/images $(BIN)/python -m pytest tests/e2e/browser -k screenshots -q

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
