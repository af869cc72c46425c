"""Shared fixtures: a temporary mesh home with the hand-written landing set, a test instance,
and the code locations loaded the way workspace.yaml declares them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from landing import write_landing

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
