# The two commands: `make dev` (set up, seed, materialize, open the UI) and `make test`.
# `make dev-team`: the team layout on this machine (PostgreSQL, a code server per location, daemon, UI).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
CUSTOMERS ?= 10000
SCALES ?= 100000,1000000
ROUNDS ?= 3
# The usual way takes 14 minutes a round at 1M customers: one round of it there.
BENCH_ARGS ?= --cap usual@1000000=1
PORT ?= 3000
export MESH_HOME ?= $(CURDIR)/.mesh
export DAGSTER_HOME ?= $(MESH_HOME)/dagster
MESH := .venv/bin/mesh
# The team set-up's own home (its PostgreSQL cluster, instance, tables, landing data), inside the
# project's state folder but apart from the laptop's catalog and tables.
TEAM_HOME ?= $(MESH_HOME)/team

.PHONY: dev dev-cloud dev-team test bench bench-dbt-env setup emulators seed materialize status ui clean

setup: .venv/.synced emulators
	@# The project's own modules too: every `mesh` command, code server and run imports them, and
	@# compiles them from source each time otherwise (0.1 s a process). Only changed files recompile;
	@# a product file that does not compile is left to the mesh, which names it where it loads.
	@.venv/bin/python -m compileall -q mesh_platform domains bench/*.py >/dev/null || true

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on this machine) every
	# process would otherwise compile Dagster from source again, 2-3 s per process.
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

# The local cloud emulators' own environments (mesh_platform/emulators) and the system packages
# the test harness runs: Chromium for UI tests, Node.js for Azurite. Stamp files keep it quick.
emulators: emulators/bigquery/.venv/.synced emulators/azurite/node_modules/.installed /usr/bin/chromium

# bqemulator pins duckdb 1.5.5, which our environment (duckdb 2.x) cannot share: its own venv.
emulators/bigquery/.venv/.synced: emulators/bigquery/pyproject.toml emulators/bigquery/uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --project emulators/bigquery --python $(PYTHON)
	@touch $@

emulators/azurite/node_modules/.installed: emulators/azurite/package.json emulators/azurite/package-lock.json
	@command -v npm >/dev/null || { $(call apt_install,nodejs npm,Node.js and npm (for Azurite)); }
	@if command -v npm >/dev/null; then \
	  echo "cd emulators/azurite && npm ci"; \
	  cd emulators/azurite && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "setup: skipped Azurite (no npm); its tests will fail until it is installed" >&2; fi

/usr/bin/chromium:
	@$(call apt_install,chromium,Chromium (for browser tests))

# $(call apt_install,PACKAGES,WHAT): Debian packages, as root or with sudo; else say what is missing
# (and go on: only the tests that need them fail, each saying what to install).
SUDO := $(if $(filter 0,$(shell id -u)),,$(if $(shell sudo -n true 2>/dev/null && echo y),sudo -n))
CAN_APT := $(if $(filter 0,$(shell id -u))$(SUDO),$(shell command -v apt-get))
apt_install = $(if $(CAN_APT),\
	echo "setup: installing $(1) with apt-get" && $(SUDO) apt-get update -qq &&\
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(1) >/dev/null,\
	echo "setup: $(2) is missing and cannot be installed here (needs root or sudo, and apt-get):\
	install the Debian package(s) '$(1)'" >&2)

# The UI starts first and the products are materialized through it, so their runs are the UI's
# (under their code location, on the Overview timeline).
dev: setup
	$(MESH) seed --customers $(CUSTOMERS)
	$(MESH) ui --port $(PORT) --materialize --allow-volume-drop

# The prod environment on this machine: every cloud's local emulator, provisioned (mesh infra
# apply), seeded, materialized and shown in the UI; Ctrl-C stops the UI and the emulators.
dev-cloud: setup
	.venv/bin/python -m mesh_platform.devcloud --customers $(CUSTOMERS) --port $(PORT)

# PostgreSQL (Debian's server, its own OS user, loopback), a gRPC code server per location of
# workspace-team.yaml, dagster-daemon and the UI on PORT, until Ctrl-C stops them all.
dev-team: setup
	MESH_HOME=$(TEAM_HOME) DAGSTER_HOME=$(TEAM_HOME)/dagster \
	  .venv/bin/python -m mesh_platform.team --port $(PORT) --customers $(CUSTOMERS)

test: setup
	.venv/bin/python -m pytest

# The mesh against the DuckDB limit, dbt and the usual pandas way: see BENCHMARKS.md.
bench: setup bench-dbt-env
	.venv/bin/python -m bench --scales $(SCALES) --rounds $(ROUNDS) $(BENCH_ARGS)

# The dbt peer's own locked environment (dbt-core, dbt-duckdb): not part of `setup`; the test
# that runs dbt (tests/bench/test_crosscheck.py) builds it with this target when it is missing.
bench-dbt-env: bench/dbt/.venv/.synced

bench/dbt/.venv/.synced: bench/dbt/pyproject.toml bench/dbt/uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --project bench/dbt --python $(PYTHON)
	@touch $@

seed: setup
	$(MESH) seed --customers $(CUSTOMERS)

materialize: setup
	$(MESH) materialize

status: setup
	$(MESH) status

ui: setup
	$(MESH) ui --port $(PORT)

clean:
	rm -rf .mesh .bench .pytest_cache
