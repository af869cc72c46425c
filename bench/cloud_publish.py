"""Publish time on the AWS emulator against local, for the issue note (a measurement, not a test).

    .venv/bin/python -m bench.cloud_publish [--customers 1000000] [--locations orders,preferences,customer] [--rounds 3]

Seeds the landing data once (`mesh seed --customers N`) into a temporary home, then, each round,
materializes each location's products in the dev environment (Iceberg on local files: the commit
registers the file DuckDB wrote) and in the prod environment on a new moto server on loopback (the
audited file is uploaded to S3, multipart, and committed to Glue), each as a real Dagster run on
the same landing data and into a new home: every round publishes each product's first version.
Prints the medians over the rounds of each product's `publish_s` (the publish step alone: upload
and commit), its compute and audit times, the rows and the data file's size. One round is too
few on a shared host: a product of 1.3 s of work moved 0.2 s between two single runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _materialize(location: str, env: str) -> dict[str, dict]:
    """The location's products in `env`; in prod those on AWS only (customer/insights lives on Azure)."""
    import dagster as dg

    from mesh_platform.cloud.infra import product_contracts
    from mesh_platform.workspace import locations

    loc = locations()[location]
    keys = [dg.AssetKey(c.key.split("/")) for c in product_contracts()
            if c.domain == location and (env == "dev" or c.server(env).type == "glue")]
    with dg.instance_for_test() as instance:
        began = time.perf_counter()
        result = loc.definitions().resolve_job_def(loc.job_name).execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=keys)
        wall = time.perf_counter() - began
        if not result.success:
            failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
            raise SystemExit(f"{location}: the run failed:\n" + "\n".join(failures))
        out = {}
        for event in result.get_asset_materialization_events():
            meta = {k: v.value for k, v in event.materialization.metadata.items()}
            out[event.asset_key.to_user_string()] = {**meta, "run_s": wall}
        return out


def _file_mb(key: str, env: str, home: Path) -> float:
    from mesh_platform.places import table
    from mesh_platform.registry import product_contract

    t = table(product_contract(key), env, home)
    fs, to_path = t.catalog.filesystem()
    return sum(fs.get_file_info(to_path(f)).size for f in t.current().files) / 1e6


def measure(customers: int, locations: list[str], bigquery: bool = False, rounds: int = 3) -> dict[str, dict]:
    """Each product's run and publish times, local and on the emulator, medians of `rounds`:
    key -> where -> figures; with `bigquery`, the federation's prod refresh on the BigQuery
    emulator too (once, after the last round: the domains' products loaded into its ports, then
    the customer_360 routine and view)."""
    from mesh_platform.emulators import MotoServer
    from mesh_platform.registry import location_order

    locations = location_order(locations)  # inputs first
    base = Path(tempfile.mkdtemp(prefix="mesh-cloud-bench-"))
    landing = base / "landing"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "AWS_"))}
    saved = dict(os.environ)
    try:
        print(f"seeding {customers:,} customers into {landing}", flush=True)
        began = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("mesh")), "seed", "--customers", str(customers)],
                       env={**env, "MESH_HOME": str(base), "MESH_LANDING": str(landing)}, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"  seeded in {time.perf_counter() - began:.1f} s", flush=True)
        os.environ.update({"MESH_LANDING": str(landing)})
        results: dict[str, dict[str, list[dict]]] = {}

        for n in range(1, rounds + 1):
            print(f"round {n} of {rounds}", flush=True)
            os.environ.update({"MESH_ENV": "dev", "MESH_HOME": str(base / f"dev-{n}")})
            for location in locations:
                print(f"local: materializing {location} ...", flush=True)
                for key, meta in _materialize(location, "dev").items():
                    results.setdefault(key, {}).setdefault("local", []).append(
                        {**meta, "mb": _file_mb(key, "dev", base / f"dev-{n}")})

            with MotoServer(state_dir=base / f"moto-{n}") as moto:
                os.environ.update(moto.env())
                os.environ.update({"MESH_ENV": "prod", "MESH_HOME": str(base / f"prod-{n}")})
                from mesh_platform.cloud import infra
                from mesh_platform.deployment import Settings

                infra.apply(Settings.from_env(), ["aws"])
                for location in locations:
                    print(f"emulator: materializing {location} ...", flush=True)
                    for key, meta in _materialize(location, "prod").items():
                        results.setdefault(key, {}).setdefault("emulator", []).append(
                            {**meta, "mb": _file_mb(key, "prod", base / f"prod-{n}")})
                if bigquery and n == rounds:  # reads the domains' products from this moto
                    bigquery_figures = _bigquery_refresh(base)
        figures = {key: {where: {k: statistics.median(m[k] for m in runs) for k in FIGURES}
                         for where, runs in by_where.items()}
                   for key, by_where in results.items()}
        if bigquery:
            figures["federation on BigQuery"] = bigquery_figures
        return figures
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(base, ignore_errors=True)


FIGURES = ("dagster/row_count", "mb", "compute_s", "audit_s", "publish_s", "run_s")


def _bigquery_refresh(base: Path) -> dict[str, float]:
    """The federation location's run in prod on the BigQuery emulator: each asset's step seconds
    (the ports' loads, customer_360's routine and view) and the run's wall time."""
    import dagster as dg

    from mesh_platform.cloud import infra
    from mesh_platform.deployment import Settings
    from mesh_platform.emulators import BigQueryEmulator
    from mesh_platform.workspace import locations

    with BigQueryEmulator(state_dir=base / "bigquery") as emulator:
        os.environ.update(emulator.env())
        infra.apply(Settings.from_env(), ["gcp"])
        loc = locations()["federation"]
        print("BigQuery emulator: materializing federation ...", flush=True)
        with dg.instance_for_test() as instance:
            began = time.perf_counter()
            result = loc.definitions().resolve_job_def(loc.job_name).execute_in_process(
                instance=instance, raise_on_error=False)
            wall = time.perf_counter() - began
            if not result.success:
                failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
                raise SystemExit("federation on BigQuery: the run failed:\n" + "\n".join(failures))
            kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
            started, steps = {}, {}
            for entry in instance.all_logs(result.run_id, of_type=kinds):
                if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                    started[entry.step_key] = entry.timestamp
                else:
                    steps[entry.step_key.replace("__", "/")] = entry.timestamp - started[entry.step_key]
    return {**steps, "run_s": wall}


def render(results: dict[str, dict[str, dict]], customers: int) -> list[str]:
    lines = [f"publish at {customers:,} customers (s, medians; publish = upload + commit; moto on loopback)",
             f"{'product':<22}{'rows':>11}{'file MB':>9}  {'where':<9}{'compute':>9}{'audit':>8}{'publish':>9}{'run':>8}"]
    for key, by_where in results.items():
        if key == "federation on BigQuery":
            lines.append(f"federation on the BigQuery emulator: run {by_where['run_s']:.1f} s; steps: "
                         + ", ".join(f"{k} {v:.1f} s" for k, v in by_where.items() if k != "run_s"))
            continue
        for where in ("local", "emulator"):
            m = by_where.get(where)
            if m is not None:
                lines.append(f"{key:<22}{m['dagster/row_count']:>11,}{m['mb']:>9.1f}  {where:<9}{m['compute_s']:>9.2f}"
                             f"{m['audit_s']:>8.2f}{m['publish_s']:>9.2f}{m['run_s']:>8.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cloud_publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--locations", default="orders,preferences,customer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bigquery", action="store_true", help="the federation's refresh on the BigQuery emulator too")
    args = parser.parse_args(argv)
    results = measure(args.customers, [x for x in args.locations.split(",") if x], args.bigquery, args.rounds)
    print("\n" + "\n".join(render(results, args.customers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
