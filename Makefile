# The two commands: `make dev` (set up, seed, materialize, open the UI) and `make test`.
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

.PHONY: dev test bench setup seed materialize status ui clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on this machine) every
	# process would otherwise compile Dagster from source again, 2-3 s per process.
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

dev: setup
	$(MESH) seed --customers $(CUSTOMERS)
	$(MESH) materialize
	$(MESH) status
	$(MESH) ui --port $(PORT)

test: setup
	.venv/bin/python -m pytest

# The mesh against the DuckDB limit and the usual pandas way: see BENCHMARKS.md.
bench: setup
	.venv/bin/python -m bench --scales $(SCALES) --rounds $(ROUNDS) $(BENCH_ARGS)

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
