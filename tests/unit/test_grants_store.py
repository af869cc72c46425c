"""The grants table through SQLAlchemy, on the laptop's SQLite catalog and on PostgreSQL: the
same grants, changes and revocations on both, and concurrent appliers never lose a change."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from mesh_platform.contracts import load_contract
from mesh_platform.grants import Grant, GrantStore
from mesh_platform.storage import Catalog
from mesh_platform.workspace import ROOT

PROFILES = ROOT / "domains/customer/contracts/profiles.odcs.yaml"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> GrantStore:
    if request.param == "sqlite":
        return GrantStore(Catalog(tmp_path).url)
    return GrantStore(Catalog(tmp_path, request.getfixturevalue("pg_database")).url)


def test_apply_grants_changes_and_revokes(store):
    contract = load_contract(PROFILES)
    changes = store.apply(contract)
    assert [(c.action, c.grant) for c in changes] == [("grant", Grant("customer/profiles", "federation"))]
    assert store.apply(contract) == []  # idempotent
    assert store.lookup("customer/profiles", "federation") == Grant("customer/profiles", "federation")
    assert store.lookup("customer/profiles", "orders") is None

    revoked = replace(contract, grants=())
    assert [(c.action, c.grant.reader) for c in store.apply(revoked)] == [("revoke", "federation")]
    assert store.all() == [] and store.for_product("customer/profiles") == {}


def test_concurrent_appliers_agree(store):
    contract = load_contract(PROFILES)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: store.apply(contract), range(8)))
    assert sum(len(r) for r in results) == 1  # exactly one of them granted; the others saw it
    assert store.all() == [Grant("customer/profiles", "federation")]
