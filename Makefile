# One entry point for humans and CI. Everything installs into .local/ (and local/idp/node_modules)
# on first use; see README.md.
SHELL := /bin/bash
FUNCTIONS := $(notdir $(wildcard functions/*))
VENV := .local/venv/bin
SAM := .local/sam-venv/bin/sam
export SAM_CLI_TELEMETRY := 0
# The services whose every request is checked against the real service's contract (and, for AWS,
# against each function's policy in template.yaml): local/contracts/report.py.
CONTRACTS := stripe elevenlabs aws

.PHONY: help up down status run test test-e2e lint build sizes tools watch admin-grant bench cost routes template-check

help:
	@echo "make run     start the local stack and serve every HTTP function on http://127.0.0.1:3001"
	@echo "make test    start the local stack and run every test (Rust, then schemathesis and the browser journey)"
	@echo "make test-e2e   schemathesis against openapi.yaml and the web client in headless Chromium only"
	@echo "make lint    rustfmt, clippy and the template check"
	@echo "make routes  write template.yaml's HTTP routes from the functions' route! tables"
	@echo "make template-check   every check of template.yaml against the code, cfn-lint and sam validate, one report"
	@echo "make build   cargo lambda build --release (x86_64) and print binary and zip sizes"
	@echo "make cost    monthly AWS cost per 1k/10k/100k MAU from bench/results.json, the profile and prices in bench/cost/"
	@echo "make bench   release binaries under a Runtime API emulator + the local API under load (prints, writes bench/results.json)"
	@echo "make watch   cargo lambda watch with the local stack's environment (for cargo lambda invoke)"
	@echo "make admin-grant EMAIL=… [ROLE=admin|support|user]   grant an admin-area role (local stack)"
	@echo "make up | down | status    the local stack alone"

up:
	local/stack.sh up

down:
	local/stack.sh down

status:
	local/stack.sh status

run: up
	local/with-env.sh cargo run --quiet -p local-api --bin local-api

# Test threads get the 8 MiB stack a Lambda invocation's thread has: unoptimised (debug) futures
# are several times larger than release ones.
test: export RUST_MIN_STACK = 8388608
test: up
	cd local/contracts && ../../$(VENV)/python -m unittest --quiet
	$(VENV)/python local/contracts/report.py begin .local/contracts $(CONTRACTS)
	@if cargo nextest --version >/dev/null 2>&1; then \
		local/with-env.sh cargo nextest run --workspace --no-fail-fast; \
	else \
		local/with-env.sh cargo test --workspace --no-fail-fast; \
	fi
	tests/e2e.sh
	$(VENV)/python local/contracts/report.py end .local/contracts $(CONTRACTS)

# The API and browser tests alone: schemathesis against openapi.yaml, the web client in Chromium.
test-e2e: up
	tests/e2e.sh

# The operator's role grant: no API route can grant a role. The person must have signed in once.
admin-grant: up
	@test -n "$(EMAIL)" || { echo "usage: make admin-grant EMAIL=someone@example.com [ROLE=admin|support|user]"; exit 2; }
	local/with-env.sh cargo run --quiet -p local-api --bin admin-grant -- "$(EMAIL)" "$(or $(ROLE),admin)"

tools:
	local/stack.sh tools

# The route! tables are the one declaration of every route: template.yaml's HttpApi events are
# written from them; openapi.yaml and events/ are checked against them (local/api/src/routes.rs).
routes:
	cargo run --quiet -p local-api --bin routes

# template.yaml as the truth: routes, environments, the template's own rules, cfn-lint and sam
# validate, one report (local/template_check.py).
template-check: tools
	$(VENV)/python local/template_check.py

lint: tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/python local/template_check.py

build: tools
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo lambda build --release $(addprefix --package ,$(FUNCTIONS))
	$(VENV)/python local/sizes.py

# A benchmark, not a test: it prints figures and never fails on a time. The empty function is
# the baseline; the host build of local-api serves the load test and the bench helpers.
bench: tools up
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo lambda build --release $(addprefix --package ,$(FUNCTIONS)) --package empty
	cargo build --release --target x86_64-unknown-linux-gnu -p local-api --bins
	$(VENV)/python bench/bench.py $(BENCH_ARGS)

cost: tools
	$(VENV)/python bench/cost.py

sizes:
	$(VENV)/python local/sizes.py

watch: up
	PATH="$(CURDIR)/$(VENV):$$PATH" local/with-env.sh cargo lambda watch
