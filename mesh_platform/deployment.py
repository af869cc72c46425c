"""The one place that reads the environment and decides the deployment.

MESH_PROFILE  deployment profile; only `local` (embedded DuckDB + Iceberg on SQLite and files)
              exists today.
MESH_HOME     where the local deployment keeps its catalog, tables and landing data
              (default: `.mesh` in the working directory).
MESH_LANDING  where the domains' source systems drop their exports (default: MESH_HOME/landing).
MESH_DUCKDB_MEMORY_LIMIT  DuckDB's memory limit per step (default 768MB; beyond it, it spills).
DAGSTER_HOME  the Dagster instance (runs, events, schedules) (default: MESH_HOME/dagster).
MESH_SOURCE_<DOMAIN>_<SOURCE>  point one source at another export of the same shape,
              e.g. MESH_SOURCE_CUSTOMER_CRM_EXPORT=/data/crm/2026-11-25.csv.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROFILES = ("local",)
SOURCE_PREFIX = "MESH_SOURCE_"


@dataclass(frozen=True)
class Settings:
    profile: str
    home: Path
    landing: Path
    dagster_home: Path
    duckdb_memory_limit: str
    source_overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        profile = env.get("MESH_PROFILE", "local")
        if profile not in PROFILES:
            raise ValueError(f"MESH_PROFILE={profile!r}: available profiles are {PROFILES}")
        home = Path(env.get("MESH_HOME", ".mesh")).resolve()
        landing = Path(env.get("MESH_LANDING", home / "landing")).resolve()
        overrides = {
            k.removeprefix(SOURCE_PREFIX).lower(): v
            for k, v in env.items()
            if k.startswith(SOURCE_PREFIX)
        }
        dagster_home = Path(env.get("DAGSTER_HOME", home / "dagster")).resolve()
        memory_limit = env.get("MESH_DUCKDB_MEMORY_LIMIT", "768MB")
        return cls(profile, home, landing, dagster_home, memory_limit, overrides)


def resources(consumer: str, settings: Settings | None = None) -> dict:
    """The resources every code location gets; `consumer` is who reads other domains' products."""
    from mesh_platform.engine import DuckDBEngine
    from mesh_platform.resource import MeshResource

    s = settings or Settings.from_env()
    return {
        "mesh": MeshResource(
            home=str(s.home),
            landing=str(s.landing),
            consumer=consumer,
            source_overrides=s.source_overrides,
        ),
        "duckdb": DuckDBEngine(memory_limit=s.duckdb_memory_limit, temp_directory=str(s.home / "tmp")),
    }
