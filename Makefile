# batchops — developer entry points. `make demo` and `make test` work from a fresh clone.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
MOTO_VERSION := 5.2.5
# aws-sam-cli pins its own range of cfn-lint (>=1.52,<1.59) and boto3: keep these three in step.
CFN_LINT_VERSION := 1.58.0
# The AWS CLI the S3 Control wire tests drive (v1: a pip package; it pins botocore).
AWSCLI_VERSION := 1.46.3
# botocore carries the S3 Control model functions/api/src/s3control/model.json is made from.
BOTOCORE_VERSION := 1.43.127
SAM_CLI_VERSION := 1.170.0
CARGO_LAMBDA_VERSION := 1.9.2
EMULATOR_HOST ?= 127.0.0.1
EMULATOR_PORT ?= 5000
WATCH_PORT ?= 9100
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
export SAM_CLI_TELEMETRY := 0
# The browser the console's test drives (Debian's packages; `make browser` installs them).
export BATCHOPS_CHROMIUM ?= /usr/bin/chromium
export BATCHOPS_CHROMEDRIVER ?= /usr/bin/chromedriver

.PHONY: setup emulator emulator-stop build dev demo test test-continuations unit lint deny validate fmt clean chaos fuzz \
	bench build-lambdas watch invoke-check browser screenshots model

setup: $(VENV)/.installed ## Virtualenv with pinned moto[server], cfn-lint, aws-sam-cli, cargo-lambda and the AWS CLI (idempotent)

# Depends on the Makefile so that a changed pin reinstalls into an existing virtualenv.
$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)' \
		'aws-sam-cli==$(SAM_CLI_VERSION)' 'cargo-lambda==$(CARGO_LAMBDA_VERSION)' 'awscli==$(AWSCLI_VERSION)' 'botocore==$(BOTOCORE_VERSION)'
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

# Debian's chromium and its chromedriver (one source package, so their versions match) and a
# font (without recommends there is none, and screenshots show boxes). Skipped when present.
browser: ## chromium, chromium-driver and a font for the console's browser test (apt; skipped when present)
	@if [ -x "$(BATCHOPS_CHROMIUM)" ] && [ -x "$(BATCHOPS_CHROMEDRIVER)" ]; then \
		echo "browser: $$($(BATCHOPS_CHROMEDRIVER) --version | cut -d' ' -f1-2) and $(BATCHOPS_CHROMIUM)"; \
	else \
		if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
			echo "make browser: $(BATCHOPS_CHROMIUM) or $(BATCHOPS_CHROMEDRIVER) is missing, and installing them needs root or sudo; or set BATCHOPS_CHROMIUM and BATCHOPS_CHROMEDRIVER" >&2; \
			exit 1; \
		fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null && \
		$(BATCHOPS_CHROMEDRIVER) --version; \
	fi

# The console's browser test once more, saving its screenshots to docs/images (only this
# target sets BATCHOPS_SCREENSHOTS, so `make test` never rewrites docs/).
screenshots: setup browser ## Save the console's screenshots to docs/images (README shows them)
	BATCHOPS_EMULATOR_PYTHON=$(abspath $(VENV))/bin/python BATCHOPS_SCREENSHOTS=$(abspath docs/images) \
		$(CARGO) test -p batchops-tests --test console -- --nocapture

test: setup browser ## The whole suite: unit tests and integration tests against moto (and cargo lambda watch) and the console in headless chromium, then the lifecycle matrix
	BATCHOPS_EMULATOR_PYTHON=$(abspath $(VENV))/bin/python BATCHOPS_CARGO_LAMBDA=$(abspath $(VENV))/bin/cargo-lambda \
		$(CARGO) test --workspace --all-targets
	@$(MAKE) --no-print-directory test-continuations

# The copy, lifecycle and exactly-once tests again, with every manifest planned one chunk per
# invocation (chunks of 7 unless a test sets its own): cancel, pause, thresholds and duplicates
# meet a plan that continues across invocations. `TestStack::wait` checks that it did.
test-continuations: setup ## The copy, lifecycle and exactly-once tests with a zero planner budget
	BATCHOPS_EMULATOR_PYTHON=$(abspath $(VENV))/bin/python BATCHOPS_PLANNER_BUDGET_SECS=0 BATCHOPS_CHUNK_SIZE=7 \
		$(CARGO) test -p batchops-tests --test copy_jobs --test lifecycle --test exactly_once

chaos: setup ## The full chaos run: 10,000 tasks under injected faults, duplicates, SIGKILL
	BATCHOPS_EMULATOR_PYTHON=$(abspath $(VENV))/bin/python BATCHOPS_CHAOS_TASKS=$${BATCHOPS_CHAOS_TASKS:-10000} \
		BATCHOPS_CHAOS_DUPLICATE_RATE=$${BATCHOPS_CHAOS_DUPLICATE_RATE:-1.0} \
		$(CARGO) test -p batchops-cli --test chaos -- --nocapture

fuzz: ## Fuzz the manifest (CSV, inventory), chunk-message and CreateJob (JSON and S3 Control XML) parsers, FUZZ_SECONDS [60] each (nightly; not in CI)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in manifest_csv chunk_message create_job inventory s3control_xml; do \
		cargo +nightly fuzz run $$t corpus/$$t -- -max_total_time=$${FUZZ_SECONDS:-60} || exit 1; done

unit: ## Unit tests only (no emulator)
	$(CARGO) test --workspace --lib --bins

lint: setup deny ## fmt, clippy, cargo-deny and validate (cfn-lint, sam validate --lint, template-check)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@$(MAKE) --no-print-directory validate

validate: setup ## The SAM template: cfn-lint, sam validate --lint, then deployed on moto and checked (no AWS needed); the S3 Control model table is current
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/sam validate --lint
	$(PY) infra/template-check.py
	$(PY) infra/s3control-model.py --check

build-lambdas: setup ## Release arm64 builds of the four functions via sam build (cargo lambda; slow: LTO)
	@VENV=$(VENV) infra/build-lambdas.sh

watch: emulator ## cargo lambda watch: the four functions against a stack on the emulator (127.0.0.1:$(WATCH_PORT))
	@VENV=$(VENV) RUN=$(RUN) EMULATOR_HOST=$(EMULATOR_HOST) EMULATOR_PORT=$(EMULATOR_PORT) WATCH_PORT=$(WATCH_PORT) infra/watch.sh

invoke-check: setup ## Each function under cargo lambda watch, invoked with infra/events/*.json; answers checked
	@VENV=$(VENV) CARGO=$(CARGO) infra/invoke-check.sh

# cargo-deny: the one on PATH if any, else installed once into $(TOOLS) (a few minutes).
DENY := $(or $(shell command -v cargo-deny 2>/dev/null),$(TOOLS)/bin/cargo-deny)

$(TOOLS)/bin/cargo-deny:
	$(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION) --root $(TOOLS)

# Advisories: checked offline against the copy of the RustSec database in $(ADVISORY_DB)
# (shared/ beside the clone). cargo-deny wants a git repository at the folder name it derives
# from the default database URL, so the copy is committed there once with the snapshot's own
# date (its SNAPSHOT file); the script prints its age and enforces deny.toml's
# maximum-db-staleness, which cargo-deny checks only when it fetches.
ADVISORY_DB ?= ../shared/advisory-db
ADVISORY_DBS := $(TOOLS)/advisory-dbs
ADVISORY_REPO := $(ADVISORY_DBS)/advisory-db-3157b0e258782691
export BATCHOPS_ADVISORY_DBS := $(abspath $(ADVISORY_DBS))
deny: $(DENY) ## Licenses, bans, sources, and advisories against the offline RustSec copy (workspace and fuzz/)
	$(DENY) check licenses bans sources
	@ADVISORY_DB=$(ADVISORY_DB) ADVISORY_REPO=$(ADVISORY_REPO) infra/advisory-db.sh
	$(CARGO) fetch --locked --quiet
	$(DENY) --offline check advisories
	cd fuzz && $(CARGO) fetch --locked --quiet && \
		$(abspath $(DENY)) --offline --manifest-path Cargo.toml --config ../deny.toml check advisories

bench: ## Benchmarks (not part of test or CI): prints a table, writes bench/results.md
	@VENV=$(VENV) bench/run.sh

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf $(RUN)

model: ## The pipeline against its model: SEEDS [1000] seeded schedules over the in-memory services (SEED=n replays one)
	BATCHOPS_MODEL_SEEDS=$${SEEDS:-1000} $${SEED:+BATCHOPS_MODEL_SEED=$$SEED BATCHOPS_MODEL_TRACE=1} \
		$(CARGO) test -p batchops-tests --test model -- --nocapture
