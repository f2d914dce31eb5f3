# Everything a new machine needs, from python3, make and git alone.
#   make dev    install, then open the Dagster UI (127.0.0.1:3000) with sensors running
#   make run    install, then materialize the whole graph headless and print the champion
#   make test   install, then run the test suite
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
BIN := .venv/bin
HOST ?= 127.0.0.1
PORT ?= 3000

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

.PHONY: help install dev run reproduce screenshots test test-fast lint format bench demo-data mlflow-ui serve clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

$(DAGSTER_HOME)/dagster.yaml:  # first use only: never overwrite an instance's own config
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

install: .venv/.installed $(DAGSTER_HOME)/dagster.yaml ## Install the locked dependencies into .venv

dev: install ## Open the Dagster UI with the graph, checks and sensors (demo data on first run)
	$(BIN)/python -m ml_assets.cli prepare
	$(BIN)/dagster dev -h $(HOST) -p $(PORT) -w workspace.yaml

run: install ## Materialize the whole graph headless and print the champion
	$(BIN)/python -m ml_assets.cli run

reproduce: install ## Retrain a registered version from its DVC data and params (VERSION=N)
	@test -n "$(VERSION)" || { echo "usage: make reproduce VERSION=N"; exit 2; }
	$(BIN)/python -m ml_assets.cli reproduce --version $(VERSION)

test: install ## Run the whole test suite
	$(BIN)/pytest

screenshots: install ## Refresh the README screenshots (docs/screenshots) with the browser test
	ML_ASSETS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest ml_assets_tests/e2e/test_browser.py

test-fast: install ## Run the tests that need no daemon or browser
	$(BIN)/pytest -m "not slow"

lint: install ## Lint, check formatting and types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright ml_assets

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install ## Print speed and memory figures (not pass/fail tests)
	$(BIN)/python -m benchmarks.run

demo-data: install ## Land one more demo batch (ARGS="--drift 1.0" or "--bad wrong_dtype" ...)
	$(BIN)/python -m ml_assets.lib.demo_data --landing data/landing $(ARGS)

mlflow-ui: install ## Open the MLflow UI on the local store (127.0.0.1:5000)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri "sqlite:///$(CURDIR)/.mlflow/mlflow.db"

serve: install ## Serve the champion over HTTP with shadow/canary rollout (PORT=5001)
	$(BIN)/python -m ml_assets.serving --host 127.0.0.1 --port $(if $(filter file,$(origin PORT)),5001,$(PORT))

clean: ## Remove the local stores and data (keeps .venv)
	rm -rf .dagster_home .mlflow .dvc_remote .dvc/cache data/landing data/validated data/snapshot/*.parquet data/holdout/*.parquet data/reports dvc.lock
