# batchops — developer entry points. `make demo` and `make test` work from a fresh clone.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.51.0
CARGO_LAMBDA_VERSION := 1.9.2
EMULATOR_HOST ?= 127.0.0.1
EMULATOR_PORT ?= 5000
RUN := .run
CARGO ?= cargo
CARGO_DENY_VERSION := 0.20.2
TOOLS := .tools

# Everything local talks to the emulator with dummy credentials.
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED := true
export BATCHOPS_S3_PATH_STYLE ?= true

.PHONY: setup emulator emulator-stop build dev demo test unit lint deny fmt clean chaos fuzz bench

setup: $(VENV)/.installed ## Virtualenv with pinned moto[server], cfn-lint and cargo-lambda (idempotent)

# Depends on the Makefile so that a changed pin reinstalls into an existing virtualenv.
$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)' 'cargo-lambda==$(CARGO_LAMBDA_VERSION)'
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

test: setup ## The whole suite: unit tests and integration tests against moto (and cargo lambda watch)
	BATCHOPS_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server BATCHOPS_CARGO_LAMBDA=$(abspath $(VENV))/bin/cargo-lambda \
		$(CARGO) test --workspace --all-targets

chaos: setup ## The full chaos run: 10,000 tasks under injected faults, duplicates, SIGKILL
	BATCHOPS_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server BATCHOPS_CHAOS_TASKS=$${BATCHOPS_CHAOS_TASKS:-10000} \
		$(CARGO) test -p batchops-cli --test chaos -- --nocapture

fuzz: ## Fuzz the manifest and chunk-message parsers for FUZZ_SECONDS [60] each (nightly; not in CI)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in manifest_csv chunk_message; do \
		cargo +nightly fuzz run $$t corpus/$$t -- -max_total_time=$${FUZZ_SECONDS:-60} || exit 1; done

unit: ## Unit tests only (no emulator)
	$(CARGO) test --workspace --lib --bins

lint: setup deny ## fmt, clippy, cfn-lint, cargo-deny
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

# cargo-deny: the one on PATH if any, else installed once into $(TOOLS) (a few minutes).
DENY := $(or $(shell command -v cargo-deny 2>/dev/null),$(TOOLS)/bin/cargo-deny)

$(TOOLS)/bin/cargo-deny:
	$(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION) --root $(TOOLS)

deny: $(DENY) ## Licenses, bans and sources (advisories too with DENY_ADVISORIES=1: needs GitHub)
	$(DENY) check licenses bans sources
	@if [ "$${DENY_ADVISORIES:-0}" = 1 ]; then $(DENY) check advisories; fi

bench: ## Benchmarks (not part of test or CI): prints a table, writes bench/results.md
	@VENV=$(VENV) bench/run.sh

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf $(RUN)
