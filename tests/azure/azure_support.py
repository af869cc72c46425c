"""What the Azure tests share: the prod environment for one test."""

from __future__ import annotations

import pytest


@pytest.fixture
def prod(monkeypatch: pytest.MonkeyPatch):
    """MESH_ENV=prod for this test."""
    monkeypatch.setenv("MESH_ENV", "prod")
