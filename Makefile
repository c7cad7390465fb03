# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION ?= 0.13.8
UV := $(PYTHON) -m uv
export UV
# Never download an interpreter: the machine's Python 3.11 is the one.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
# Tests and the dev fleet start servers with fork+exec from processes that hold gRPC
# channels; gRPC's fork handlers can then hang Popen for good (grpc/grpc#37259).
# We always exec right after fork, the case gRPC documents this switch for.
export GRPC_ENABLE_FORK_SUPPORT := false

PY_PACKAGES := -p confab_core -p confab_devservers -p confab_devfleet \
	-p conversation -p presence -p bot -p notification -p gateway
BUF := tools/buf/node_modules/.bin/buf
PYTEST := $(UV) run --frozen pytest

.PHONY: help install run test lint proto-lint proto-check protos test-unit test-e2e fuzz openapi clean \
	deploy-check deploy-render bench bench-full bench-files

help:
	@echo "make run    - start the whole fleet on local Kafka, MongoDB-wire, Redis and clamd, with a demo tenant"
	@echo "              (ARGS=\"--files-backend s3\": uploaded files on a local versitygw instead of GridFS)"
	@echo "make test   - install what is missing, lint, check protos, run unit, integration and e2e tests"

E2E_NODE := tests/e2e/node/node_modules/.package-lock.json

install: .cache/stamps/uv .cache/stamps/sync .cache/stamps/servers $(BUF) $(E2E_NODE)

.cache/stamps/uv:
	@mkdir -p $(@D)
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	@touch $@

.cache/stamps/sync: uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml) .cache/stamps/uv
	$(UV) sync --frozen --all-packages
	@touch $@

# versitygw is the slowest step (a Go build of minutes, CPU-bound), so it runs
# beside the others (apt-get, Maven downloads), which mostly wait on the network.
.cache/stamps/servers: scripts/install-redis.sh scripts/install-clamav.sh scripts/install-kafka.sh \
		tools/kafka/pom.xml scripts/install-local-kms.sh scripts/install-s3.sh
	@mkdir -p $(@D)
	@scripts/install-s3.sh & s3=$$!; \
	  scripts/install-redis.sh && scripts/install-clamav.sh && scripts/install-kafka.sh && \
	  scripts/install-local-kms.sh; rc=$$?; \
	  wait $$s3 || rc=1; exit $$rc
	@touch $@

$(BUF): tools/buf/package.json tools/buf/package-lock.json
	npm install --prefix tools/buf --no-audit --no-fund --loglevel=error
	@touch $@

# The official npm socket.io-client, driven by tests/e2e/test_official_client.py.
$(E2E_NODE): tests/e2e/node/package.json tests/e2e/node/package-lock.json
	npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	rm -rf .run/dev
	$(UV) run --frozen python -m confab_devfleet --workdir .run/dev $(ARGS)

test: install lint proto-check deploy-check test-unit test-e2e

lint: install proto-lint
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy $(PY_PACKAGES)

proto-lint: $(BUF)
	$(BUF) lint

protos: install
	scripts/gen-protos.sh

proto-check: install
	@tmp=$$(mktemp -d); scripts/gen-protos.sh "$$tmp" && \
	  if diff -r -q "$$tmp/confab" libs/protos/src/confab >/dev/null; then \
	    echo "proto-check: generated code matches protos/"; rm -rf "$$tmp"; \
	  else \
	    diff -r "$$tmp/confab" libs/protos/src/confab | head -40; rm -rf "$$tmp"; \
	    echo "proto-check: libs/protos is stale; run 'make protos' and commit" >&2; exit 1; \
	  fi

# One worker per core (at most four), a test file per worker at a time: each worker
# starts its own servers, and a module's shared fixtures stay in one process.
test-unit: install
	$(PYTEST) libs services tests/integration -q -n auto --maxprocesses 4 --dist loadfile

test-e2e: install
	$(PYTEST) tests/e2e -q

# The REST fuzz deeper than make test runs it (tests/e2e/test_domain_fuzz.py).
fuzz: install
	CONFAB_FUZZ_EXAMPLES=25 $(PYTEST) tests/e2e/test_domain_fuzz.py -q

# Helm lint/template, kubeconform, kustomize overlays, render drift, Dockerfile
# builder stages, alert and dashboard checks (tools built from registries).
deploy-check: install
	scripts/check-deploy.sh

deploy-render:
	deploy/k8s/render.sh

# Benchmarks (bench/README.md): the fleet on the Rust SecantusDB server, built once
# into .cache/secantus-rs (or pass CONFAB_SECANTUS_BIN=/path/to/secantusd-rs).
BENCH := $(UV) run --frozen python -m bench.run
bench: install
	@bin=$$(bench/install-secantus-rs.sh) && CONFAB_SECANTUS_BIN="$$bin" $(BENCH) --profile short
	@bin=$$(bench/install-secantus-rs.sh) && CONFAB_SECANTUS_BIN="$$bin" $(UV) run --frozen python -m bench.files
bench-files: install
	@bin=$$(bench/install-secantus-rs.sh) && CONFAB_SECANTUS_BIN="$$bin" $(UV) run --frozen python -m bench.files
bench-full: install
	@bin=$$(bench/install-secantus-rs.sh) && CONFAB_SECANTUS_BIN="$$bin" $(BENCH) --profile full --gateways 3

openapi: install
	$(UV) run --frozen python scripts/export-openapi.py docs/openapi.json

clean:
	rm -rf .cache/stamps .run
