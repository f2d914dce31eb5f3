# Everything a new machine needs, from python3, make and git alone.
#   make dev        install, then start Dagster, the MLflow UI and the Data Docs (Ctrl-C stops all)
#   make dev-scale  the same code on Postgres, an MLflow server, Celery workers and an S3 remote
#   make run        install, then materialize the whole graph headless and print the champion
#   make test       install, then run the test suite
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
BIN := .venv/bin
# The Dagster UI's port (the other ports: ML_ASSETS_<NAME>_PORT); every server binds 127.0.0.1.
PORT ?= 3000
# Where the scale-out profile keeps its servers' state (Postgres cluster, logs, pids); git ignores it.
SCALE_STATE ?= $(CURDIR)/.scale
# Debian packages of the scale-out profile; installed by `make scale-deps` (sudo -n when not root).
SCALE_DEBS := postgresql redis-server

# Embedded defaults; any of them can be set in the environment to point at real servers.
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export ML_ASSETS_ROOT ?= $(CURDIR)
# Every process (webserver, daemon, each run's step processes) must see the same MLflow store:
# MLflow's registry resolves logged models through its process-wide default URI.
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/.mlflow/mlflow.db
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
# `mlflow server`/`mlflow ui` would otherwise start background job consumers nothing here uses.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

.PHONY: help install dev dev-scale stop-scale scale-deps run reproduce screenshots test test-long test-fast lint format bench soak demo-data mlflow-ui serve clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

$(DAGSTER_HOME)/dagster.yaml:  # first use only: never overwrite an instance's own config
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/embedded/dagster.yaml $@

install: .venv/.installed $(DAGSTER_HOME)/dagster.yaml ## Install the locked dependencies into .venv

dev: install ## Dagster UI, MLflow UI and Data Docs on 127.0.0.1 (demo data on first run); Ctrl-C stops all
	$(BIN)/python -m ml_assets.devserver embedded --dagster-port $(PORT)

dev-scale: install scale-deps ## The same graph on Postgres, an MLflow server, Celery workers, S3 (DETACH=1: background)
	$(BIN)/python -m ml_assets.devserver scale --state $(SCALE_STATE) --dagster-port $(PORT) $(if $(DETACH),--detach)

stop-scale: ## Stop everything `make dev-scale` started (by the pids it recorded)
	$(BIN)/python -m ml_assets.devserver stop --state $(SCALE_STATE)

scale-deps: ## Install the Debian packages of the scale-out profile (postgresql, redis-server) if missing
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then \
	    command -v apt-get >/dev/null || { echo "scale-deps: no apt-get; install PostgreSQL and Redis yourself" >&2; exit 1; }; \
	    sudo=""; if [ "$$(id -u)" != 0 ]; then sudo="sudo -n"; fi; \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(SCALE_DEBS); \
	fi

run: install ## Materialize the whole graph headless and print the champion
	$(BIN)/python -m ml_assets.cli run

reproduce: install ## Retrain a registered version from its DVC data and params (VERSION=N)
	@test -n "$(VERSION)" || { echo "usage: make reproduce VERSION=N"; exit 2; }
	$(BIN)/python -m ml_assets.cli reproduce --version $(VERSION)

# The suite runs on every core (pytest-xdist); tests marked with one `xdist_group` share a worker, so
# a module-scoped server profile starts once. TEST_WORKERS=0 runs it in one process, e.g. to debug.
TEST_WORKERS ?= auto

test: install ## Run the suite but its `long` stories (<10 min on 2 cores), on every core; print the slowest
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15 -m "not long"

test-long: install ## Run the `long` end-to-end stories (daemon, `make dev`, `make run`, kill -9, browser); CI runs them too
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=10 -m long

screenshots: install ## Refresh the README screenshots (docs/screenshots): the browser test and the rollout's history
	ML_ASSETS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest ml_assets_tests/e2e/test_browser.py ml_assets_tests/e2e/test_serving.py

test-fast: install ## Run the tests that need no daemon or browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup -m "not slow"

lint: install ## Lint, check formatting and types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright ml_assets

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make soak`: batches landed on the real daemon, and the rows of each (override: make soak BATCHES=20).
BATCHES ?= 200
ROWS ?= 300

soak: install ## Land BATCHES=200 batches (5% bad) on the real daemon (ARGS="--keep" ...); fails on a lost row or a worse champion
	$(BIN)/python -m benchmarks.soak --batches $(BATCHES) --rows $(ROWS) $(ARGS)

bench: install scale-deps ## Print speed and memory figures (not pass/fail tests), embedded and scale-out
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.profiles

demo-data: install ## Land one more demo batch (ARGS="--drift 1.0" or "--bad wrong_dtype" ...)
	$(BIN)/python -m ml_assets.lib.demo_data --landing data/landing $(ARGS)

mlflow-ui: install ## Only the MLflow UI on the local store (127.0.0.1:5000; `make dev` starts it too)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --workers 1 --backend-store-uri "sqlite:///$(CURDIR)/.mlflow/mlflow.db"

serve: install ## Serve the champion over HTTP with shadow/canary rollout (PORT=5001)
	$(BIN)/python -m ml_assets.serving --host 127.0.0.1 --port $(if $(filter file,$(origin PORT)),5001,$(PORT))

clean: ## Remove the local stores and data (keeps .venv)
	rm -rf .dagster_home .dev .mlflow .dvc_remote .dvc/cache data/landing data/validated data/snapshot/*.parquet data/holdout/*.parquet data/reports dvc.lock
