# The two commands: `make dev` (set up, seed, materialize, open the UI) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
CUSTOMERS ?= 10000
PORT ?= 3000
export MESH_HOME ?= $(CURDIR)/.mesh
export DAGSTER_HOME ?= $(MESH_HOME)/dagster
MESH := .venv/bin/mesh

.PHONY: dev test setup seed materialize status ui clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

dev: setup
	$(MESH) seed --customers $(CUSTOMERS)
	$(MESH) materialize
	$(MESH) status
	$(MESH) ui --port $(PORT)

test: setup
	.venv/bin/python -m pytest

seed: setup
	$(MESH) seed --customers $(CUSTOMERS)

materialize: setup
	$(MESH) materialize

status: setup
	$(MESH) status

ui: setup
	$(MESH) ui --port $(PORT)

clean:
	rm -rf .mesh .pytest_cache
