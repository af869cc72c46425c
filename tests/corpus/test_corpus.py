"""The bad-input corpus (cases.py): every case, run the same way.

One Dagster instance and one mesh home for the module: the good landing set is published once for
every domain; each case then makes its bad input, loads and runs for real, checks what the
platform said and that nothing was published, and puts the good landing set back.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest
from corpus.cases import CASES, Case
from corpus.harness import (
    PRODUCT,
    Workspace,
    audit_text,
    exception_text,
    failure_text,
    published,
    recorded,
    run,
    write_good_landing,
)

from mesh_platform import contract_versions, location, registry
from mesh_platform.contracts import Contract, ContractError, load_contract
from mesh_platform.policies import PolicyError

DOMAINS = ("orders", "preferences", "customer")  # in lineage order: customer/insights reads the others


def _clean_env(mp: pytest.MonkeyPatch, home: Path) -> None:
    """The environment a location reads when it loads: this module's home, no overrides."""
    mp.setenv("MESH_HOME", str(home))
    mp.delenv("MESH_LANDING", raising=False)
    for key in [k for k in os.environ if k.startswith("MESH_SOURCE_")]:
        mp.delenv(key)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """Where the module's mesh home lives: in memory when the system has a tmpfs (the catalog
    commits to SQLite at every publish; on a busy disk each fsync costs milliseconds)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="mesh-corpus-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def corpus_instance():
    """One Dagster instance for the module's runs. An ephemeral one (runs and events in an
    in-memory SQLite): instance_for_test's gives each run its own event-log database, created
    through its migrations, which costs more than the run itself (0.4 s of CPU against 0.17 s)."""
    instance = dg.DagsterInstance.ephemeral()
    yield instance
    instance.dispose()


@pytest.fixture(scope="module")
def corpus_home(corpus_dir, corpus_instance):
    """A home where the good version of every domain's product is published; the rows of each
    are kept, so that a positive control that published other rows can be undone."""
    home = corpus_dir / "mesh"
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, home)
        write_good_landing(home / "landing")
        good = {domain: _publish_good(home, domain, corpus_instance) for domain in DOMAINS}
    return home, good


def _publish_good(home: Path, domain: str, instance) -> list[dict]:
    result = run(Workspace.real().definitions(domain), domain, instance, {})
    assert result.success, failure_text(result)
    return published(home, domain).rows


@pytest.fixture(scope="module", autouse=True)
def _parse_each_contract_once():
    """A contract's parse is a function of its bytes (and its path, which only names it), and
    every case loads the same real contracts again (each location load reads the whole
    workspace's, and validating one against the ODCS schema takes tens of milliseconds): each
    text is parsed once per module. An edited contract has other bytes: it is parsed for real."""
    parsed: dict[bytes, Contract] = {}

    def load(path):
        text = Path(path).read_bytes()
        if text not in parsed:
            parsed[text] = load_contract(path)
        return dataclasses.replace(parsed[text], path=Path(path))  # a copy names its own file

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(location, "load_contract", load)
        mp.setattr(registry, "load_contract", load)
        yield


@pytest.fixture(scope="module", autouse=True)
def _no_version_gate():
    """Cases edit contracts in place, as a broken commit would, without releasing versions; the
    version gate (its own tests: tests/versions) would stop each such edit at load before the
    error the case is about. Out of the way here, and only here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(contract_versions, "check_published", lambda *args: None)
        yield


@pytest.fixture(autouse=True)
def _keep_modules():
    """A location's load registers its product modules (mesh_products.<domain>.*): the real
    ones come back after a case that loaded an edited copy."""
    saved = {k: v for k, v in sys.modules.items() if k.startswith("mesh_products.")}
    yield
    for k in [k for k in sys.modules if k.startswith("mesh_products.")]:
        del sys.modules[k]
    sys.modules.update(saved)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input(case: Case, corpus_home, corpus_instance, monkeypatch, tmp_path):
    home, good = corpus_home
    landing = home / "landing"
    _clean_env(monkeypatch, home)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    ws = Workspace(tmp_path / "workspace", case.edits).install(monkeypatch)
    expect = [e.replace("{folder}", str(ws.folders[case.domain])).replace("{landing}", str(landing))
              for e in case.expect]
    before = published(home, case.domain)
    audit_from = len(audit_text(home))
    try:
        if case.landing:
            case.landing(landing)
        if case.outcome == "load_error":
            _assert_load_error(case, ws, expect)
            assert published(home, case.domain) == before
            return

        result = run(ws.definitions(case.domain), case.domain, corpus_instance, case.tags)
        after = published(home, case.domain)
        text = recorded(corpus_instance, result, home, audit_from)
        leaked = [m for m in case.markers if m in text]
        assert not leaked, f"landing values {leaked} are in what the run recorded"
        passed = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert {name: passed.get(name) for name in case.checks} == case.checks
        if case.outcome == "published":
            assert result.success, failure_text(result)
            assert after.snapshot_id != before.snapshot_id
        else:
            assert not result.success, "the bad input was accepted"
            message = failure_text(result)
            print(message)  # what the platform said: pytest -rP shows it
            missing = [e for e in expect if e not in message]
            assert not missing, f"{missing} not in:\n{message}"
            assert result.get_asset_materialization_events() == []
            # The published version is untouched: same snapshot, history, rows and data files.
            assert after == before
        if case.verify:
            case.verify(before, after, result)
    finally:
        write_good_landing(landing)
        if case.outcome == "published" and published(home, case.domain).rows != good[case.domain]:
            # A positive control published other rows: the good version again, for the next case.
            with monkeypatch.context() as mp:
                _clean_env(mp, home)
                assert _publish_good(home, case.domain, corpus_instance) == good[case.domain]


def _assert_load_error(case: Case, ws: Workspace, expect: list[str]) -> None:
    start = time.perf_counter()
    with pytest.raises(case.error) as info:
        ws.definitions(case.domain)
    elapsed = time.perf_counter() - start
    error = info.value
    message = str(error)
    print(message)  # what the platform said: pytest -rP shows it
    missing = [e for e in expect if e not in message]
    assert not missing, f"{missing} not in:\n{message}"
    if isinstance(error, ContractError):
        assert error.field == case.field
        assert message.startswith(f"{error.path}: {case.field}: ")
    elif isinstance(error, PolicyError):
        assert case.field in [v.field for v in error.violations]
    if case.within is not None:
        assert elapsed < case.within, f"the load took {elapsed:.1f} s"
    text = exception_text(error)
    leaked = [m for m in case.markers if m in text]
    assert not leaked, f"landing values {leaked} are in the load error"

    # The workspace's other locations still load, each with its products.
    for name in ws.folders:
        if name == case.domain or name in case.broken:
            continue
        keys = ws.definitions(name).resolve_all_asset_keys()
        assert dg.AssetKey([name, PRODUCT[name]]) in keys, name
    for name in case.broken:
        with pytest.raises(ContractError):
            ws.definitions(name)
