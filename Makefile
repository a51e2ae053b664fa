# The same commands for everyone: developers, CI (.ci/run calls `make test`) and the demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := operator,training,serving,monitoring,dev
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create the project venv with every role's dependencies

.PHONY: system-deps
system-deps: ## Install the Debian packages the tests use (prometheus, chromium, wrk)
	@need=""; for p in prometheus:prometheus chromium:chromium; do \
	  cmd=$${p%%:*}; pkg=$${p##*:}; command -v $$cmd >/dev/null || need="$$need $$pkg"; done; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	  else echo "missing Debian packages:$$need (run as root or install them)"; exit 1; fi; fi

.PHONY: controlplane
controlplane: $(STAMP) ## Build etcd, Kubernetes, kubectl, KWOK and Helm from the Go module proxy (cached)
	$(BIN)/mlsteward dev build

.PHONY: crds
crds: $(STAMP) ## Regenerate crds/ from mlsteward/api (and the chart's copies of them)
	$(BIN)/mlsteward crds
	$(BIN)/mlsteward dev chart

.PHONY: lint
lint: $(STAMP) ## ruff, mypy --strict, import-linter, and the CRD staleness check
	$(BIN)/ruff check mlsteward tests bench
	$(BIN)/ruff format --check mlsteward tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/mlsteward crds --check

.PHONY: test
test: $(STAMP) system-deps controlplane lint ## Every test: unit, component, cluster and e2e
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: demo
demo: $(STAMP) controlplane ## The main job: a local control plane with mlsteward, an example model trained, served, monitored
	$(BIN)/mlsteward dev demo

.PHONY: up
up: $(STAMP) controlplane ## Start the local control plane in .cluster/ (stop with `make down`)
	$(BIN)/mlsteward dev up --dir .cluster

.PHONY: down
down: $(STAMP) ## Stop the local control plane started by `make up`
	$(BIN)/mlsteward dev down --dir .cluster

.PHONY: format
format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix mlsteward tests bench
	$(BIN)/ruff format mlsteward tests bench

.PHONY: clean
clean: ## Remove the venv and caches in the work tree (not the control-plane cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
