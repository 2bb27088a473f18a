# nimops.multinode — the two commands a fresh machine needs are `make demo` and `make test`.
# Everything they depend on (Python venv, Go-built binaries, test images) is installed idempotently
# into a cache keyed by pinned versions ($(NIMOPS_CACHE)), so a second run is quick.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
NIMOPS_CACHE ?= $(HOME)/.cache/nimops
export NIMOPS_CACHE
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup sim-build sim-up sim-down sim-status hosts-up hosts-down sanity lint unit integration test demo plan bench

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: ## Python venv with the pinned toolchain (cached by requirements hash)
	@scripts/setup-venv.sh $(VENV)

sim-build: ## build the simulated cluster's binaries (cached by version)
	@tests/simcluster/build.sh

sim-up: setup sim-build ## start the simulated GPU cluster on 127.0.0.1
	@$(PY) tests/simcluster/simcluster.py up

sim-down: ## stop the simulated cluster (by recorded PID)
	@$(PY) tests/simcluster/simcluster.py down

sim-status: ## show the simulated cluster's processes and nodes
	@$(PY) tests/simcluster/simcluster.py status

hosts-up: setup ## start the simulated bare-metal hosts (netns + sshd + podman; builds the test image once)
	@$(PY) tests/simhosts/simhosts.py up --hosts $${SIMHOSTS:-2}

hosts-down: ## stop the simulated hosts (by recorded PID); the image and model caches stay
	@$(PY) tests/simhosts/simhosts.py down

sanity: setup ## ansible-test sanity on the collection
	@scripts/sanity.sh

lint: setup ## ansible-lint, production profile
	@ansible-lint --profile production

unit: setup ## unit tests of the pure logic in plugins/module_utils
	@$(PY) -m pytest -q tests/unit

integration: setup ## integration tests on the simulated test beds
	@scripts/integration.sh

test: setup ## everything CI runs (the test beds' builds start in the background first and overlap the checks)
	@scripts/prebuild.sh
	@$(MAKE) --no-print-directory sanity lint unit integration

demo: setup sim-build ## deploy the seed's 405B two-node example on the simulated cluster (see README)
	@scripts/demo.sh

plan: setup ## what would be deployed and why: the 405B example through nim_plan and nim_values (PLAN_ARGS="-e ...")
	@scripts/plan.sh $(PLAN_ARGS)

bench: setup sim-build ## benchmarks on the test beds (own 32-node sim); figures printed and in bench/results/latest.json
	@$(PY) bench/bench.py $(BENCH_ARGS)
