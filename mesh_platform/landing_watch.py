"""Landing sources watched: a sensor per location observes each source's files (a fingerprint
of their names, sizes and modification times: the data version; file count, bytes, latest
modification) and, when the files a product was last built from have changed, requests a run
of that product, unless a run is building it already (that run reads the new files). The run is
an ordinary one: its blocking checks still decide whether it publishes, and the products that
read it follow through their own automation.

The fingerprint a product was built from is in its materialization's metadata
(`landing_versions`, written by publish), so a restart, a second deployment or `mesh materialize`
between two ticks never causes a rebuild of data already built; a change the run failed on is
tried once per fingerprint (the run key).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from mesh_platform.contracts import Contract
from mesh_platform.products import product_key, source_key
from mesh_platform.resource import MeshResource
from mesh_platform.runs import runs_building

VERSIONS_METADATA = "landing_versions"  # on a product's materialization: {source: data version}
DATA_VERSION_TAG = "dagster/data_version"  # how Dagster records an observation's data version


def files_of(contract: Contract, landing_root: str | Path, override: str | None) -> list[str]:
    """The files a source's pattern matches now (as sources.resolve finds them)."""
    return sorted(glob.glob(override or str(Path(landing_root).resolve() / (contract.server_path or ""))))


def fingerprint(files: list[str] | tuple[str, ...]) -> tuple[str, dict]:
    """(data version, observation metadata) of a set of files, from their stat alone."""
    digest = hashlib.sha256()
    total, latest = 0, None
    for f in sorted(files):
        st = os.stat(f)
        digest.update(f"{os.path.basename(f)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        total += st.st_size
        latest = max(latest or st.st_mtime, st.st_mtime)
    metadata = {"file_count": len(files), "bytes": total}
    if latest is not None:
        # What the UI's freshness of an external asset reads.
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(latest)
    return digest.hexdigest()[:20], metadata


def landing_sensor(location: str, sources: dict[str, Contract], products: dict[str, tuple[str, ...]],
                   contracts: dict[str, Contract]) -> dg.SensorDefinition:
    """The sensor of a location: `products` maps each product built from landing data to the
    sources it reads."""

    @dg.sensor(
        name=f"{location}_landing",
        job_name=f"{location}_products",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Observes this domain's landing files; rebuilds a product when the files it was built from changed.",
    )
    def watch(context: dg.SensorEvaluationContext, mesh: MeshResource):
        seen = json.loads(context.cursor) if context.cursor else {}
        now, events = {}, []
        for name, contract in sources.items():
            files = files_of(contract, mesh.landing_root, mesh.source_override(location, name))
            now[name], metadata = fingerprint(files)
            if seen.get(name) != now[name]:
                events.append(dg.AssetObservation(asset_key=source_key(location, name), metadata=metadata,
                                                  tags={DATA_VERSION_TAG: now[name]}))
        requests = []
        keys = {product: product_key(contracts[product]) for product in products}
        # A product a run is building already (`mesh materialize`, the UI) is left to that run.
        building = {k for ks in runs_building(context.instance, keys.values()).values() for k in ks}
        for product, reads in products.items():
            key = keys[product]
            if key in building:
                continue
            wanted = {s: now[s] for s in reads}
            latest = context.instance.get_latest_materialization_event(key)
            built = latest.asset_materialization.metadata.get(VERSIONS_METADATA) if latest else None
            if built is None or built.value != wanted:
                requests.append(dg.RunRequest(
                    run_key=f"{key.to_user_string()}:{json.dumps(wanted, sort_keys=True)}",
                    asset_selection=[key],
                    tags={"mesh/trigger": "landing-changed"},
                ))
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(now, sort_keys=True))

    return watch
