"""Pytest fixtures for the local cloud emulators, PostgreSQL and Chromium.

Each server starts once per test session, on first use, and stops at the end of the session.
The function-scoped fixtures hand a test a clean server (state reset before the test) and the
standard SDK settings in its environment:

    aws          MotoServer, reset, with AWS_ENDPOINT_URL & co. set
    bigquery     BigQueryEmulator, datasets deleted, with BIGQUERY_EMULATOR_HOST & co. set
    azure        Azurite, containers deleted, with AZURE_STORAGE_CONNECTION_STRING set
    postgres     Postgres (running; restarted if a test left it stopped), with PG* set
    browser_page a fresh Playwright page in the session's Chromium
    arm          the FAKE Azure Resource Manager (mesh_platform/emulators/fake_arm.py: nothing
                 emulates ARM),
                 emptied, as AZURE_RESOURCE_MANAGER_URL

The session-scoped ones (`moto_server`, `bigquery_emulator`, `azurite_server`,
`postgres_server`, `chromium_context`) give the servers without reset or environment.

Wire in from tests/conftest.py with: pytest_plugins = ["services.fixtures"]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_platform.emulators import Azurite, BigQueryEmulator, MotoServer, Postgres, chromium
from mesh_platform.emulators.fake_arm import FakeArm

# How long each session server took to start (seconds), for the report at the session's end.
START_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="session")
def emulator_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the session's servers: logs, data, the BigQuery emulator's HOME."""
    return tmp_path_factory.mktemp("emulators")


def _serve(service):
    service.start()
    START_SECONDS[service.name] = service.start_seconds
    return service


@pytest.fixture(scope="session")
def moto_server(emulator_state: Path) -> Iterator[MotoServer]:
    server = _serve(MotoServer(state_dir=emulator_state / "moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bigquery_emulator(emulator_state: Path) -> Iterator[BigQueryEmulator]:
    server = _serve(BigQueryEmulator(state_dir=emulator_state / "bigquery", project="mesh-test"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_server(emulator_state: Path) -> Iterator[Azurite]:
    server = _serve(Azurite(state_dir=emulator_state / "azurite"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(emulator_state: Path) -> Iterator[Postgres]:
    server = _serve(Postgres(state_dir=emulator_state / "postgres"))
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture(scope="session")
def chromium_context():
    """The session's Chromium (a Playwright BrowserContext with a fresh profile)."""
    with chromium() as context:
        yield context


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    moto_server.reset()
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    return moto_server


@pytest.fixture
def bigquery(bigquery_emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch) -> BigQueryEmulator:
    bigquery_emulator.reset()
    for key, value in bigquery_emulator.env().items():
        monkeypatch.setenv(key, value)
    return bigquery_emulator


@pytest.fixture
def azure(azurite_server: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    azurite_server.reset()
    for key, value in azurite_server.env().items():
        monkeypatch.setenv(key, value)
    return azurite_server


@pytest.fixture
def postgres(postgres_server: Postgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[Postgres]:
    postgres_server.start()  # no-op when running
    for key, value in postgres_server.env().items():
        monkeypatch.setenv(key, value)
    yield postgres_server
    postgres_server.start()  # a test that stopped it and failed leaves it running for the next


@pytest.fixture(scope="session")
def fake_arm_server() -> Iterator[FakeArm]:
    arm = FakeArm().start()
    yield arm
    arm.stop()


@pytest.fixture
def arm(fake_arm_server: FakeArm, monkeypatch: pytest.MonkeyPatch) -> FakeArm:
    fake_arm_server.reset()
    monkeypatch.setenv("AZURE_RESOURCE_MANAGER_URL", fake_arm_server.url)
    return fake_arm_server


@pytest.fixture
def browser_page(chromium_context):
    page = chromium_context.new_page()
    yield page
    page.close()


def pytest_terminal_summary(terminalreporter) -> None:
    if START_SECONDS:
        started = ", ".join(f"{name} {s:.1f} s" for name, s in START_SECONDS.items())
        terminalreporter.write_line(f"emulators started once this session: {started}")
