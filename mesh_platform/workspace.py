"""The code locations as workspace.yaml declares them, loaded and run the way Dagster does."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mesh_platform.checkout import find_root

if TYPE_CHECKING:  # Dagster is imported where it runs: `mesh status` and `mesh seed` never load it
    import dagster as dg

ROOT = find_root()
WORKSPACE = Path(os.environ.get("MESH_WORKSPACE") or ROOT / "workspace.yaml").resolve()


@dataclass(frozen=True)
class Location:
    name: str
    path: Path

    @property
    def job_name(self) -> str:
        return f"{self.name}_products"

    def definitions(self) -> dg.Definitions:
        spec = importlib.util.spec_from_file_location(f"mesh_location_{self.name}", self.path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        defs = module.defs
        return defs() if callable(defs) else defs


def locations(workspace: Path = WORKSPACE) -> dict[str, Location]:
    entries = yaml.safe_load(workspace.read_text())["load_from"]
    return {
        e["python_file"]["location_name"]: Location(
            e["python_file"]["location_name"], workspace.parent / e["python_file"]["relative_path"]
        )
        for e in entries
    }


def location_job(location: str) -> dg.JobDefinition:
    """The job of every product of a location. Module-level, so that the step processes of a
    multiprocess run can rebuild it, as they rebuild any job the UI launches."""
    loc = locations()[location]
    return loc.definitions().resolve_job_def(loc.job_name)


def materialize(
    location: str, instance: dg.DagsterInstance, in_process: bool = True, tags: dict[str, str] | None = None,
    products: list[dg.AssetKey] | None = None, run_config: dict | None = None,
) -> dg.JobExecutionResult:
    """One real Dagster run of the products of a location (`products`, default all), recorded in
    `instance` and executed in this process, by the location's executor (a one-step run in this
    process, otherwise a process per step; every step here with `in_process`)."""
    from dagster._core.execution.api import execute_run

    job, run = _new_run(location, instance, in_process, tags, products, run_config)
    return execute_run(job, run, instance)


def run_events(
    location: str, instance: dg.DagsterInstance, in_process: bool, tags: dict[str, str],
    products: list[dg.AssetKey] | None, run_config: dict | None = None,
) -> Iterator[dg.DagsterEvent]:
    """`materialize`, yielding the run's events as they happen (those of step processes too)."""
    from dagster._core.execution.api import execute_run_iterator

    job, run = _new_run(location, instance, in_process, tags, products, run_config)
    yield from execute_run_iterator(job, run, instance)


def _new_run(location, instance, in_process, tags, products, run_config):
    """A run created as the UI creates one: of the location's job, with the code location of
    workspace.yaml as its origin, so the UI shows it under its location and job (the Overview
    timeline leaves out runs without one). Dagster's public entry points (`execute_job`,
    `execute_in_process`) create runs without an origin; launching through a code server instead
    would cost a server per location and a process per run."""
    import dagster as dg

    from mesh_platform.executor import IN_PROCESS_TAG
    from mesh_platform.runs import DOMAIN_TAG, HOST_TAG, this_host

    job = dg.build_reconstructable_job(__name__, "location_job", reconstructable_args=(location,))
    job_def = job.get_definition()
    tags = {**job_def.run_tags, "mesh/trigger": "mesh-cli", HOST_TAG: this_host(), DOMAIN_TAG: location,
            **({IN_PROCESS_TAG: "true"} if in_process else {}), **(tags or {})}
    run = instance.create_run_for_job(
        job_def, run_config=run_config, tags=tags, asset_selection=frozenset(products) if products else None,
        job_code_origin=job.get_python_origin(), remote_job_origin=_job_origin(location, job_def.name),
    )
    return job, run


def _job_origin(location: str, job_name: str):
    """The origin the webserver and the daemon give a run of `job_name` in `location`."""
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    from mesh_platform.runs import REPOSITORY

    origin = {o.location_name: o for o in location_origins_from_yaml_paths([str(WORKSPACE)])}[location]
    return RemoteJobOrigin(RemoteRepositoryOrigin(origin, REPOSITORY), job_name)
