# Tact — `make help` lists every target.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA := deploy/kafka/kafka.sh
PYTEST_ARGS ?=
BENCH_ARGS ?=
SEED ?= 1

.DEFAULT_GOAL := help
.PHONY: help install run demo-replay test test-unit test-integration lint format \
        typecheck kafka-up kafka-down kafka-status bench bench-interval chaos soak clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tact needs Python 3.11+; found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "install: installing Tact and its dev tools into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install --disable-pip-version-check --upgrade pip \
		>$(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]' \
		>>$(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@touch $@

install: $(BIN)/.installed ## Create .venv and install Tact with its dev tools (quick when nothing changed)

run: install ## Start the local Kafka and a worker, then play the motivating story through them
	@bash deploy/run-local.sh

demo-replay: install ## Print the motivating story's decisions as a table (offline, no Kafka)
	@$(BIN)/tact replay --policy deploy/examples/travel-policy.yaml --format table \
		deploy/examples/story.jsonl

test: install ## Run every test; the suite starts its own Kafka broker
	@$(KAFKA) fetch
	@$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## Run the tests that need no broker
	@$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## Run the tests against a real broker
	@$(KAFKA) fetch
	@$(BIN)/pytest tests/integration $(PYTEST_ARGS)

lint: install ## Check style, imports and types (writes nothing)
	@$(BIN)/ruff check app tests
	@$(BIN)/ruff format --check app tests
	@$(BIN)/mypy

format: install ## Rewrite the code in the project's format
	@$(BIN)/ruff check --fix app tests
	@$(BIN)/ruff format app tests

typecheck: install ## Run mypy in strict mode
	@$(BIN)/mypy

kafka-up: ## Start the local single-node Kafka in the background
	@$(KAFKA) up

kafka-down: ## Stop the local Kafka started by kafka-up
	@$(KAFKA) down

kafka-status: ## Say whether the local Kafka runs
	@$(KAFKA) status

bench: install ## Run the benchmarks and write tests/benchmarks/results/ (BENCH_ARGS=--quick: a short run)
	@$(KAFKA) fetch
	@$(BIN)/python -m tests.benchmarks $(BENCH_ARGS)

bench-interval: install ## Throughput, and latency at half of it, per commit interval (INTERVALS="0.1 0.02")
	@$(KAFKA) fetch
	@$(BIN)/python -m tests.benchmarks.commit_interval $(INTERVALS)

chaos: install ## Fault-injection suite at full size, e.g. make chaos SEED=7 (guarantee: TACT_PROCESSING_GUARANTEE)
	@$(KAFKA) fetch
	@$(BIN)/pytest tests/reliability -m chaos --chaos-scale=full --chaos-seed=$(SEED) \
		--chaos-record=var/chaos/runs.jsonl $(PYTEST_ARGS)

soak: install ## One worker through 1M intents over 100k customers; fails above the README's RSS bound
	@$(KAFKA) fetch
	@$(BIN)/python -m tests.benchmarks.soak $(SOAK_ARGS)

clean: ## Remove local data, caches and the venv
	rm -rf $(VENV) var .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
