"""Which locations' runs of a refresh may run at the same time, and when they should.

A wave is a set of locations whose selected products read nothing that another location of the
wave or a later one builds in this refresh: its runs are independent. They run side by side (up
to MESH_MAX_CONCURRENT_RUNS) only when their landing data fit one step's memory budget together
(a third of MESH_DUCKDB_MEMORY_LIMIT, or MESH_BUCKET_BYTES: what a product may take on whole):
the process tree then holds about one step's worth of DuckDB memory, as when runs go one at a
time. Larger refreshes keep one location at a time: each step's DuckDB may use the whole limit,
and two cores gain nothing from several at once when each step's engine already uses both.
"""

from __future__ import annotations

import os

import dagster as dg

from mesh_platform.contracts import load_contract
from mesh_platform.deployment import Settings, override_key
from mesh_platform.engine import memory_bytes
from mesh_platform.landing_watch import files_of
from mesh_platform.workspace import locations


def waves(order: list[str], keys: dict[str, list[dg.AssetKey]],
          upstream: dict[dg.AssetKey, set[dg.AssetKey]]) -> list[list[str]]:
    """The locations of `order` (lineage order, mesh_platform.registry.location_order) grouped
    into waves, by what their `keys` read (`upstream`) among the other locations' `keys`."""
    location_of = {k: loc for loc in order for k in keys[loc]}
    wave_of: dict[str, int] = {}
    grouped: list[list[str]] = []
    for loc in order:
        needs = {location_of[u] for k in keys[loc] for u in upstream.get(k, ())
                 if u in location_of and location_of[u] != loc}
        if needs - wave_of.keys():  # locations reading each other: after everything so far
            at = len(grouped)
        else:
            at = max((wave_of[n] + 1 for n in needs), default=0)
        wave_of[loc] = at
        if at == len(grouped):
            grouped.append([])
        grouped[at].append(loc)
    return grouped


def together(names: list[str], settings: Settings) -> bool:
    """Whether to run these locations' runs side by side: more than one, no more than
    MESH_MAX_CONCURRENT_RUNS, and their sources' landing data fit one step's budget together."""
    if not 1 < len(names) <= settings.max_concurrent_runs:
        return False
    budget = settings.bucket_bytes or memory_bytes(settings.duckdb_memory_limit) // 3
    return sum(landing_bytes(name, settings) for name in names) <= budget


def landing_bytes(location: str, settings: Settings) -> int:
    """The bytes of every landing file of a location's sources, as the landing sensor finds them
    (a source with no file counts 0: its product's run says what is missing)."""
    total = 0
    for path in sorted((locations()[location].path.parent / "sources").glob("*.odcs.yaml")):
        override = settings.source_overrides.get(override_key(location, path.name.removesuffix(".odcs.yaml")))
        total += sum(os.path.getsize(f) for f in files_of(load_contract(path), settings.landing, override))
    return total
