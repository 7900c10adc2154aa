# omnirouter — `make run` runs the router, `make test` runs the tests. Each installs what it
# needs first: the virtualenv and package, redis-server/Java/Maven (apt-get, when root), and the
# Kafka broker jars (Maven Central, cached).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The suite in two processes: one alone leaves a core idle half the time (tests that wait on
# the broker, consumer groups or a browser). Each process starts its own Kafka and Redis;
# the cluster and fault packages, which start stacks of their own, run together in one process
# (tests/support/xdist_grouping.py).
TEST_PROCESSES ?= 2

.DEFAULT_GOAL := help
.PHONY: help run test test-faults lint format schemas system-deps browser-deps ops-deps broker devstack-up devstack-down bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "omnirouter needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,lint,containers]'
	@touch $@

system-deps: ## install redis-server, Java and Maven when missing (apt-get, as root)
	@deploy/local/install-system-deps.sh

broker: $(STAMP) system-deps ## fetch the Kafka broker jars from Maven Central (once, cached)
	@$(BIN)/omnirouter devstack fetch

run: broker ## run the router on this machine (Ctrl-C stops everything)
	$(BIN)/omnirouter run

browser-deps: ## install Debian's Chromium for the browser tests (apt-get, as root)
	@deploy/local/install-system-deps.sh chromium

ops-deps: ## install Debian's prometheus package, for promtool (apt-get, as root)
	@deploy/local/install-system-deps.sh prometheus

test: broker browser-deps ops-deps ## run the whole test suite on the real Kafka broker and redis-server
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS)

test-faults: broker ## the fault-injection suite at full size (SIGKILL, broker and Redis restarts)
	OMNIROUTER_TEST_FAULTS=full $(BIN)/pytest tests/faults -m faults $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy (strict on src/)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

schemas: $(STAMP) ## regenerate schemas/ from the event models
	$(BIN)/omnirouter schemas export

bench: broker ## benchmark pipeline vs raw Kafka and the gateway (BENCH_ARGS=--quick); not part of test
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m omnirouter.bench $(BENCH_ARGS)

devstack-up: broker ## start a local Kafka + Redis and print their addresses
	$(BIN)/omnirouter devstack up

devstack-down: $(STAMP) ## stop the local Kafka + Redis
	$(BIN)/omnirouter devstack down

clean: ## stop devstack and remove the virtualenv and caches
	-@[ -x $(BIN)/omnirouter ] && $(BIN)/omnirouter devstack down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .omnirouter
