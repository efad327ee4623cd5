# haoperator — the commands a developer (and CI) runs. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install lock cluster cluster-down dev lint test test-unit test-integration

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP) ## create .venv/ with the project and its dev tools, from the lock file

lock: ## re-resolve requirements/*.lock from pyproject.toml (needs network to PyPI)
	$(PYTHON) -m venv .lockenv && .lockenv/bin/pip install --quiet uv
	.lockenv/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu -q -o requirements/dev.lock
	.lockenv/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu -q -o requirements/runtime.lock
	rm -rf .lockenv

cluster: ## start the local Kubernetes control plane (idempotent); writes .testenv/kubeconfig and .testenv/env
	testenv/cluster up

cluster-down: ## stop the local control plane and everything it started
	testenv/cluster down

dev: install cluster ## run the operator on the local cluster with the samples (Ctrl-C stops it)
	testenv/dev

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-unit: install ## unit tests: pure code, no cluster
	$(BIN)/pytest tests/unit

test-integration: install cluster ## integration tests on the local cluster
	KUBECONFIG=$(CURDIR)/.testenv/kubeconfig $(BIN)/pytest tests/integration

test: lint test-unit test-integration ## everything CI runs: lint, unit and integration tests
