"""The code locations as workspace.yaml declares them, loaded and run the way Dagster does."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = ROOT / "workspace.yaml"


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


def materialize(location: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """One real Dagster run of every product of a location, recorded in `instance`."""
    loc = locations()[location]
    job = loc.definitions().resolve_job_def(loc.job_name)
    return job.execute_in_process(instance=instance, raise_on_error=False, tags={"mesh/trigger": "mesh-cli"})
