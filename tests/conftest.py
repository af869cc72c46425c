"""Shared fixtures: a temporary mesh home with the hand-written landing set, a test instance,
and the code locations loaded the way workspace.yaml declares them; a fresh PostgreSQL database
on the session's server, and `backend`: the laptop set-up (SQLite) or the team set-up's
(Dagster's storage and the Iceberg catalog on PostgreSQL)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from landing import write_landing

from mesh_platform.storage import Catalog
from mesh_platform.workspace import locations

pytest_plugins = ["services.fixtures"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mesh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MESH_HOME in a temporary folder, holding the hand-written landing set."""
    home = tmp_path / "mesh"
    monkeypatch.setenv("MESH_HOME", str(home))
    monkeypatch.delenv("MESH_LANDING", raising=False)
    for key in [k for k in __import__("os").environ if k.startswith("MESH_SOURCE_")]:
        monkeypatch.delenv(key)
    write_landing(home / "landing")
    return home


@pytest.fixture
def restore_product_modules():
    """A copied location registers its product modules under the real names: restore them."""
    saved = {k: v for k, v in sys.modules.items() if k.startswith("mesh_products.")}
    yield
    for k in [k for k in sys.modules if k.startswith("mesh_products.")]:
        del sys.modules[k]
    sys.modules.update(saved)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def materialize(location: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """A real run of every product in a location (the job the schedule and `mesh` run)."""
    loc = locations()[location]
    return loc.definitions().resolve_job_def(loc.job_name).execute_in_process(
        instance=instance, raise_on_error=False
    )


def materialize_daily(location: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """A real run of the job the location's daily schedule runs: its products built from landing
    data (products built from other products follow those by automation instead)."""
    defs = locations()[location].definitions()
    job = defs.resolve_schedule_def(f"{location}_daily").job_name
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def step_failure_messages(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        e.step_failure_data.error.message for e in result.all_events if e.is_step_failure
    )


def error_chain(result: dg.ExecuteInProcessResult) -> str:
    """Everything the event log keeps about the step failures: messages, causes, contexts."""
    texts = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        stack = [event.step_failure_data.error]
        while stack:
            info = stack.pop()
            if info is None:
                continue
            texts += [info.message, *info.stack]
            stack += [info.cause, info.context]
    return "\n".join(texts)


def create_database(server) -> str:
    """A new, empty database on the PostgreSQL server `server`; its SQLAlchemy URL."""
    import psycopg2

    name = f"mesh_{uuid.uuid4().hex[:12]}"
    con = psycopg2.connect(server.dsn)
    try:
        con.autocommit = True
        con.cursor().execute(f"CREATE DATABASE {name}")
    finally:
        con.close()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(server, url: str) -> None:
    import psycopg2

    if not server.running:
        return
    con = psycopg2.connect(server.dsn)
    try:
        con.autocommit = True
        con.cursor().execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
    finally:
        con.close()


@pytest.fixture
def pg_database(postgres_server) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server (started, or restarted if a test left
    it stopped), dropped afterwards."""
    postgres_server.start()
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@dataclass
class Backend:
    """Where a test's mesh keeps its state: `instance` and `catalog`, and the settings (`env`)
    that give a process the same (for subprocesses: MESH_INSTANCE, MESH_POSTGRES_URL)."""

    name: str
    instance: dg.DagsterInstance
    catalog: Catalog
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, mesh_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The laptop set-up (a test instance, the SQLite catalog under the home) or the team
    set-up's (MESH_INSTANCE=postgres: the instance the mesh configures, runs, event log and
    schedules in a fresh PostgreSQL database, and the Iceberg catalog and grants in it too)."""
    if request.param == "sqlite":
        with dg.instance_for_test() as inst:
            yield Backend("sqlite", inst, Catalog(mesh_home))
        return
    from mesh_platform.deployment import Settings
    from mesh_platform.runs import write_instance_config

    url = request.getfixturevalue("pg_database")
    env = {"MESH_INSTANCE": "postgres", "MESH_POSTGRES_URL": url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    dagster_home = tmp_path / "dagster-postgres"
    write_instance_config(dagster_home, Settings.from_env())
    with dg.DagsterInstance.from_config(str(dagster_home)) as inst:
        yield Backend("postgres", inst, Catalog(mesh_home, url), env)
