"""The systems under benchmark, run on the same landing files: how to start each, its
per-step times, and where its customer_360 ends up."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import dbt_peer, timeline

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRODUCTS = {  # product -> (namespace, contract)
    "profiles": ("customer", ROOT / "domains/customer/contracts/profiles.odcs.yaml"),
    "history": ("orders", ROOT / "domains/orders/contracts/history.odcs.yaml"),
    "settings": ("preferences", ROOT / "domains/preferences/contracts/settings.odcs.yaml"),
    "customer_360": ("federation", ROOT / "mesh_platform/federation/contracts/customer_360.odcs.yaml"),
}


@dataclass(frozen=True)
class System:
    name: str
    command: Callable[[Path, Path], list[str]]  # (landing, work) -> argv
    env: Callable[[Path, Path], dict[str, str]]
    # work -> {step: {"s": seconds, and its process "pid" or its own "cpu_s" and "peak_rss_mb"}}
    steps: Callable[[Path], dict[str, dict]]
    output: Callable[[Path, str], str]  # (work, product) -> a DuckDB table expression
    database: Callable[[Path], Path] | None = None  # a DuckDB file the output expression reads
    # (landing, work) -> None: run once, unmeasured, before a scale's first round (dbt's parse)
    prepare: Callable[[Path, Path], None] | None = None
    # (work, started epoch, wall s) -> where the run's time went (bench.timeline)
    timeline: Callable[[Path, float, float], dict] | None = None


def dagster_steps(dagster_home: Path) -> dict[str, dict]:
    """Every step of every run in an instance: its duration (STEP_START to STEP_SUCCESS) and
    the process it ran in."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    steps: dict[str, dict] = {}
    for record in instance.get_run_records():
        for key, start, end in timeline.step_pairs(instance.all_logs(record.dagster_run.run_id, of_type=kinds)):
            steps[key.split("__")[-1]] = {"s": end.timestamp - start.timestamp, "pid": start.dagster_event.pid}
    instance.dispose()
    return steps


def _mesh_output(work: Path, product: str) -> str:
    from mesh_platform.storage import Catalog

    files = Catalog(work).current(PRODUCTS[product][0], product).files
    return f"read_parquet({list(files)!r})"


# The products every system builds: the mesh's other products (customer/insights) are left out
# of its runs, so that each system does the same work.
MESH_SELECTION = " or ".join(f"key:{namespace}/{product}" for product, (namespace, _) in PRODUCTS.items())


def _mesh(in_process: bool) -> System:
    return System(
        name="mesh_in_process" if in_process else "mesh",
        command=lambda landing, work: [str(BIN / "mesh"), "materialize", "--select", MESH_SELECTION]
        + (["--in-process"] if in_process else []),
        env=lambda landing, work: {
            "MESH_HOME": str(work), "MESH_LANDING": str(landing), "DAGSTER_HOME": str(work / "dagster"),
        },
        steps=lambda work: dagster_steps(work / "dagster"),
        output=_mesh_output,
        timeline=lambda work, started, wall: timeline.refresh_timeline(work / "dagster", started, wall),
    )


def _limit(name: str, *bound: str) -> System:
    return System(
        name=name,
        command=lambda landing, work: [sys.executable, "-m", "bench.limit", "--landing", str(landing),
                                       "--out", str(work), *bound],
        env=lambda landing, work: {},
        steps=lambda work: json.loads((work / "steps.json").read_text()),
        output=lambda work, product: f"read_parquet('{work / product}.parquet')",
    )


LIMIT = _limit("limit")
# The limit held to the memory the 10M target allows the mesh (2 GiB peak): DuckDB within
# 1800MB peaked at 2011-2028 MiB at 10M. How its own time grows from 1M to 10M so bounded is the
# reference for the mesh's growth target.
LIMIT_2GIB = _limit("limit_2gib", "--memory-limit", "1800MB")

USUAL = System(
    name="usual",
    command=lambda landing, work: [sys.executable, "-m", "bench.usual", "--landing", str(landing), "--out", str(work)],
    env=lambda landing, work: {"DAGSTER_HOME": str(work / "dagster")},
    steps=lambda work: dagster_steps(work / "dagster"),
    output=lambda work, product: f"usual.public.{product}",
    database=lambda work: work / "usual.duckdb",
)

# `dbt build` of bench/dbt/ from its own environment (bench/dbt_peer.py).
DBT = System(
    name="dbt",
    command=dbt_peer.command,
    env=dbt_peer.env,
    steps=dbt_peer.steps,
    output=lambda work, product: f"read_parquet('{work / product}.parquet')",
    prepare=dbt_peer.prepare,
)

SYSTEMS = {s.name: s for s in (_mesh(False), _mesh(True), LIMIT, LIMIT_2GIB, USUAL, DBT)}
