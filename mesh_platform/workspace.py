"""The code locations as workspace.yaml declares them, loaded and run the way Dagster does."""

from __future__ import annotations

import contextlib
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
# Within loading_once(): the definitions loaded so far, by location file.
_kept: dict[Path, dg.Definitions] | None = None


@contextlib.contextmanager
def loading_once() -> Iterator[None]:
    """Within: each location's definitions are loaded once and reused, by the selection and by
    every run's job (rebuilt from the file per run otherwise: 0.1-0.2 s a location each time).
    For one command: a process that keeps running must see a changed product file or setting
    the next time it loads."""
    global _kept
    outer = _kept
    _kept = {} if outer is None else outer
    try:
        yield
    finally:
        _kept = outer


@dataclass(frozen=True)
class Location:
    name: str
    path: Path

    @property
    def job_name(self) -> str:
        return f"{self.name}_products"

    def definitions(self) -> dg.Definitions:
        if _kept is not None and self.path in _kept:
            return _kept[self.path]
        spec = importlib.util.spec_from_file_location(f"mesh_location_{self.name}", self.path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        defs = module.defs() if callable(module.defs) else module.defs
        if _kept is not None:
            _kept[self.path] = defs
        return defs


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


def run_tags(location: str, in_process: bool) -> dict[str, str]:
    """The tags of a run `mesh` starts, executed here or launched through the UI."""
    from mesh_platform.executor import IN_PROCESS_TAG
    from mesh_platform.runs import DOMAIN_TAG, HOST_TAG, this_host

    return {"mesh/trigger": "mesh-cli", HOST_TAG: this_host(), DOMAIN_TAG: location,
            **({IN_PROCESS_TAG: "true"} if in_process else {})}


def materialize(
    location: str, instance: dg.DagsterInstance, in_process: bool = True, tags: dict[str, str] | None = None,
    products: list[dg.AssetKey] | None = None, run_config: dict | None = None,
) -> dg.JobExecutionResult:
    """One real Dagster run of the products of a location (`products`, default all), recorded in
    `instance` and executed in this process, by the location's executor (a one-step run in this
    process, otherwise a process per step; every step here with `in_process`).

    Runs carry their location's label, so the UI lists them under their location's job. They have
    no code location origin (Dagster's public entry points create runs without one), so the
    Overview timeline leaves them out: with a UI up, `mesh` launches through it instead
    (mesh_platform.ui_launch)."""
    import dagster as dg

    from mesh_platform.runs import LOCATION_LABEL_TAG, REPOSITORY

    tags = {**run_tags(location, in_process), LOCATION_LABEL_TAG: f"{REPOSITORY}@{location}", **(tags or {})}
    job = dg.build_reconstructable_job(__name__, "location_job", reconstructable_args=(location,))
    return dg.execute_job(job, instance, tags=tags, asset_selection=products, run_config=run_config)
