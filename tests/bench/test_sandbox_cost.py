"""The sandbox's cost benchmark (`--sandbox`) runs the real refresh both ways: its unsandboxed
stand-in must keep accepting whatever `sandbox.lock` is called with (a refresh in which a
product fails exits non-zero, and `_refresh` stops the benchmark on that)."""

from __future__ import annotations

import os

import pytest

from bench import sandbox_cost
from mesh_platform.seed import generate_landing


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_refresh_runs_with_and_without_the_sandbox(tmp_path, monkeypatch, sandboxed):
    for key in ("MESH_HOME", "MESH_LANDING", "DAGSTER_HOME"):  # _refresh sets them: restored after
        monkeypatch.setenv(key, os.environ.get(key, ""))
    landing = tmp_path / "landing"
    generate_landing(landing, customers=300, seed=1)
    assert sandbox_cost._refresh(landing, tmp_path / "work", sandboxed) > 0
    assert not (tmp_path / "work").exists()
