# haoperator — the commands a developer (and CI) runs. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install lock cluster cluster-down dev lint test test-unit test-integration test-realnode

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

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

cluster: ## start the local cluster: control plane, 3 kwok nodes, the real node (idempotent); writes .testenv/kubeconfig and .testenv/env
	testenv/cluster up

cluster-down: ## stop the local cluster and remove what it left on the machine (also after a crash)
	testenv/cluster down

dev: install cluster ## run the operator on the local cluster with the samples (Ctrl-C stops it)
	testenv/dev

lint: install ## ruff (lint + format check), mypy, and helm lint of charts/haoperator (helm: testenv/build helm)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	helm=$$(testenv/build helm) && "$$helm/helm" lint --strict charts/haoperator

test-unit: install ## unit tests: pure code, no cluster
	$(BIN)/pytest tests/unit

test-integration: install cluster ## integration and e2e tests on the local cluster
	KUBECONFIG=$(CURDIR)/.testenv/kubeconfig HAOPERATOR_E2E_LOCAL_OPERATOR=1 $(BIN)/pytest tests/integration tests/e2e

test-realnode: install cluster ## the real-node tier: real containers on the local cluster's real node (root)
	KUBECONFIG=$(CURDIR)/.testenv/kubeconfig $(BIN)/pytest tests/realnode

test: lint test-unit test-integration test-realnode ## everything CI runs: lint, unit, integration and real-node tests

# -- shipping: the image, and the e2e suite on kind (kind needs a Docker engine) -------------
.PHONY: image image-local kind-e2e
# The image reference is named once, in manifests/kustomization.yaml (images: newName/newTag).
IMAGE ?= $(shell awk '/newName:/ {n=$$2} /newTag:/ {t=$$2} END {print n ":" t}' manifests/kustomization.yaml)
KIND ?= kind
KIND_CLUSTER ?= haoperator-e2e
# e.g. kindest/node:v1.34.0; empty: the default node image of your kind release
KIND_NODE_IMAGE ?=
KIND_KUBECONFIG := $(CURDIR)/.testenv/kind-kubeconfig
NO_DOCKER = needs a Docker engine; none is running here (docker info fails)
NO_BUILDER = needs a Docker engine, buildah or podman; none is here (docker info fails)

# Docker where an engine runs; otherwise buildah or podman (daemonless, the same Dockerfile).
image: ## build the operator image (named in manifests/kustomization.yaml) with Docker, buildah or podman
	@if docker info >/dev/null 2>&1; then set -x; docker build --tag $(IMAGE) .; \
	elif command -v buildah >/dev/null; then set -x; buildah bud --layers --tag $(IMAGE) .; \
	elif command -v podman >/dev/null; then set -x; podman build --layers --tag $(IMAGE) .; \
	else echo "make image $(NO_BUILDER)" >&2; exit 1; fi

# No registry: both bases made from Debian packages (cached per machine), built by buildah.
image-local: ## build the image without a registry (testenv/image build): .testenv/images/haoperator.tar
	testenv/image build

kind-e2e: ## on a new kind cluster: build and load the image, apply manifests/, run tests/e2e, delete it
	@docker info >/dev/null 2>&1 || { echo "make kind-e2e $(NO_DOCKER)" >&2; exit 1; }
	@command -v $(KIND) >/dev/null || { echo "make kind-e2e needs kind (https://kind.sigs.k8s.io)" >&2; exit 1; }
	@command -v kubectl >/dev/null || { echo "make kind-e2e needs kubectl on PATH" >&2; exit 1; }
	$(MAKE) install image
	mkdir -p $(dir $(KIND_KUBECONFIG))
	trap '$(KIND) delete cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)' EXIT; \
	$(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml \
	  $(if $(strip $(KIND_NODE_IMAGE)),--image $(KIND_NODE_IMAGE)) --kubeconfig $(KIND_KUBECONFIG) --wait 180s; \
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER); \
	export KUBECONFIG=$(KIND_KUBECONFIG); \
	kubectl apply -k manifests/; \
	kubectl wait --for=condition=Established crd/haservices.haoperator.dev --timeout=60s; \
	kubectl -n haoperator-system rollout status deployment/haoperator --timeout=180s; \
	$(BIN)/pytest tests/e2e
