# batchops — developer entry points. `make demo` and `make test` work from a fresh clone.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.51.0
EMULATOR_HOST ?= 127.0.0.1
EMULATOR_PORT ?= 5000
RUN := .run
CARGO ?= cargo

# Everything local talks to the emulator with dummy credentials.
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED := true
export BATCHOPS_S3_PATH_STYLE ?= true

.PHONY: setup emulator emulator-stop build dev demo test unit lint fmt clean bench

setup: $(VENV)/.installed ## Virtualenv with pinned moto[server] and cfn-lint (idempotent)

$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'
	touch $@

emulator: setup ## Start moto on $(EMULATOR_HOST):$(EMULATOR_PORT) (idempotent)
	@EMULATOR_HOST=$(EMULATOR_HOST) EMULATOR_PORT=$(EMULATOR_PORT) VENV=$(VENV) RUN=$(RUN) infra/emulator.sh start

emulator-stop: ## Stop the moto started by `make emulator`
	@EMULATOR_PORT=$(EMULATOR_PORT) RUN=$(RUN) infra/emulator.sh stop

build: ## Build the batchops binary
	$(CARGO) build --bin batchops

dev: emulator build ## Run the stack locally (API on 127.0.0.1:9000)
	AWS_ENDPOINT_URL=http://$(EMULATOR_HOST):$(EMULATOR_PORT) target/debug/batchops dev

demo: setup build ## Run a real copy job end to end on the emulator and print the report
	@infra/demo.sh

test: setup ## The whole suite: unit tests and integration tests against moto
	BATCHOPS_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server $(CARGO) test --workspace --all-targets

unit: ## Unit tests only (no emulator)
	$(CARGO) test --workspace --lib --bins

lint: setup ## fmt, clippy, cfn-lint
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

bench: ## Benchmarks (not part of test or CI): prints a table, writes bench/results.md
	@VENV=$(VENV) bench/run.sh

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf $(RUN)
