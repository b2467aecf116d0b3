# Two entry points for a fresh machine (see README): `make up` and `make test`.
# Everything is installed into .venv and node_modules inside the checkout. Running the node needs
# only the runtime dependencies (`make up`); the dev tools (pytest, mypy, buf, ...) come with
# `make test` and the other developer targets, on top of them, behind a stamp of their own (so
# `make test` after `make up` still installs them).

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
TEST_WORKERS ?= 3

.PHONY: install install-dev up test lint protos protos-check contracts contracts-check bench clean

$(STAMP): pyproject.toml setup.py protocol/_native.c package.json package-lock.json
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	# `npm ci`: exactly what the lock says, and the lock (tracked) is never rewritten. The lock lists
	# every platform's optional anvil binary (npm installs only this platform's); a lock that lists
	# only one makes `npm install` add the others, and `npm ci` refuse it. A node_modules that is a
	# symlink (a git worktree sharing another checkout's) is left alone: `npm ci` through it would
	# empty the other checkout's.
	[ -L node_modules ] || npm ci --silent --no-audit --no-fund
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

## Run the tree in the foreground with a local anvil L1; Ctrl-C stops it.
up: install
	$(BIN)/l2node up

## Everything CI checks: generated code fresh, protos linted, ruff, the import layers, mypy --strict, whole test suite.
## The suite runs in TEST_WORKERS processes (pytest-xdist): most tests wait on L1 blocks, timers and
## child processes rather than burn a core, so 3 workers fit a 2-core machine. A module is one unit
## (--dist loadfile): its module-scoped fixtures are set up once, its tests keep their order. Units
## go out in collection order (--no-loadscope-reorder): xdist's default, most tests first, would
## leave the few-test modules that wait on L1 for a minute (tests/node) to the very end. The slowest
## tests are named at the end (--durations), where the suite's 15-minute budget is watched.
test: install-dev lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

lint: install-dev protos-check contracts-check
	$(BIN)/buf lint protos
	$(BIN)/ruff check supervisor services protocol l2node tests bench protos
	$(BIN)/lint-imports
	$(BIN)/mypy --strict supervisor services/runtime services/l1 protocol services/sequencer services/rollups services/bridge services/channels services/jsonrpc l2node

protos: install-dev
	$(BIN)/python protos/generate.py

protos-check: install-dev
	$(BIN)/python protos/generate.py --check

## Solidity artifacts (solcjs from npm), reproducible; CI fails when the committed ones are stale.
contracts: install
	node contracts/build.mjs

contracts-check: install
	node contracts/build.mjs --check

bench: install-dev
	$(BIN)/python bench/restart_latency.py
	$(BIN)/python bench/sequencer_throughput.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
