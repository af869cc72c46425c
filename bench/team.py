"""`python -m bench.team`: the team set-up against the laptop's, measured.

1. A refresh of every product (`mesh materialize`: the three domains, then customer_360, each
   a real Dagster run with a process per step) on the same landing data, with the instance and
   the Iceberg catalog in SQLite (MESH_INSTANCE=local) and in PostgreSQL (MESH_INSTANCE=postgres,
   a local PostgreSQL 15 cluster on loopback). The first round publishes the tables, the next
   ones refresh them; the backends alternate which goes first. Wall and CPU time of the whole
   process tree; the outputs of both are checked equal.
2. The team set-up's start: the PostgreSQL cluster (initdb and start, then a restart of the same
   cluster) and the four code servers, the daemon and the webserver until GraphQL shows every
   location loaded.

Not a test: numbers for README.md. Results in DIR/team.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb

from bench.measure import clean_env, run_measured
from bench.systems import ROOT

BIN = ROOT / ".venv" / "bin"
PRODUCTS = [("customer", "profiles"), ("orders", "history"), ("preferences", "settings"), ("federation", "customer_360")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.team", description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="the first publishes, the others refresh")
    parser.add_argument("--starts", type=int, default=2, help="team set-up starts to time")
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench" / "team")
    args = parser.parse_args(argv)

    from mesh_platform.emulators import Postgres
    from mesh_platform.seed import generate_landing

    args.dir.mkdir(parents=True, exist_ok=True)
    landing = args.dir / f"landing-{args.customers}"
    if not (landing / "customer").exists():
        print(f"seeding {args.customers:,} customers ...", flush=True)
        generate_landing(landing, args.customers, 7)
    shutil.rmtree(args.dir / "postgres", ignore_errors=True)
    postgres = Postgres(state_dir=args.dir / "postgres")
    began = time.monotonic()
    postgres.start()
    results: dict = {"customers": args.customers, "machine": _machine(),
                     "postgres_first_start_s": round(time.monotonic() - began, 2)}
    try:
        postgres.stop()
        began = time.monotonic()
        postgres.start()
        results["postgres_restart_s"] = round(time.monotonic() - began, 2)
        results["refresh"] = _refreshes(postgres, landing, args.dir, args.rounds)
        results["team_start_s"] = _team_starts(postgres, args.dir, args.starts)
    finally:
        postgres.stop()
        postgres.cleanup()
    (args.dir / "team.json").write_text(json.dumps(results, indent=2))
    _report(results)
    return 0


def _database(postgres) -> str:
    import uuid

    import psycopg2

    name = f"bench_{uuid.uuid4().hex[:8]}"
    con = psycopg2.connect(postgres.dsn)
    con.autocommit = True
    con.cursor().execute(f"CREATE DATABASE {name}")
    con.close()
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


def _refreshes(postgres, landing: Path, folder: Path, rounds: int) -> dict:
    backends = {"sqlite": {}, "postgres": {"MESH_INSTANCE": "postgres", "MESH_POSTGRES_URL": _database(postgres)}}
    runs: dict[str, list[dict]] = {b: [] for b in backends}
    for round_ in range(rounds):
        order = list(backends) if round_ % 2 == 0 else list(reversed(backends))
        for backend in order:
            work = folder / "work" / backend
            if round_ == 0:
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
            env = {**clean_env(), "MESH_HOME": str(work), "DAGSTER_HOME": str(work / "dagster"),
                   "MESH_LANDING": str(landing), **backends[backend]}
            server_cpu = _server_cpu(postgres)
            m = run_measured([str(BIN / "mesh"), "materialize"], env, ROOT, work / f"round-{round_}.log")
            server_cpu = _server_cpu(postgres) - server_cpu  # PostgreSQL's own work, in every round
            if m.returncode != 0:
                raise SystemExit(f"{backend} round {round_} failed:\n{m.output[-3000:]}")
            # `mesh materialize`'s line per product: "  orders/history  PASS  95,806 rows  2.8s"
            steps = {m_.group(1): float(m_.group(2)) for m_ in re.finditer(
                r"^\s+(\S+/\S+)\s+PASS\s+.*?([\d.]+)s$", m.output, re.MULTILINE)}
            runs[backend].append({"round": round_, "wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2),
                                  "postgres_cpu_s": round(server_cpu, 2), "products_s": steps})
            print(f"  round {round_} {backend:<8} {m.wall_s:6.1f}s wall {m.cpu_s:6.1f}s CPU "
                  f"(+{server_cpu:.1f}s PostgreSQL)  {steps}", flush=True)
        _check_equal(folder, backends)
    return runs


def _server_cpu(postgres) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster and its backends (the ended
    ones are counted in the postmaster's children times)."""
    import psutil

    server = psutil.Process(postgres.pid)
    times = server.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in server.children():
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _check_equal(folder: Path, backends: dict) -> None:
    """Both backends published the same rows (order-independent)."""
    from mesh_platform.storage import Catalog

    sums = {}
    for backend, env in backends.items():
        catalog = Catalog(folder / "work" / backend, env.get("MESH_POSTGRES_URL"))
        sums[backend] = {
            f"{ns}/{name}": duckdb.sql(
                f"SELECT count(*), sum(hash(t)) FROM read_parquet({list(catalog.current(ns, name).files)!r}) t"
            ).fetchall()[0]
            for ns, name in PRODUCTS
        }
    if len({json.dumps(s, sort_keys=True) for s in sums.values()}) != 1:
        raise SystemExit(f"the backends' outputs differ: {sums}")


def _team_starts(postgres, folder: Path, starts: int) -> list[float]:
    from mesh_platform.team import CodeServerSpec, TeamDeployment, code_server_specs, free_port

    took = []
    for i in range(starts):
        home = folder / "team" / str(i)
        shutil.rmtree(home, ignore_errors=True)
        specs = [CodeServerSpec(s.location, s.python_file, "127.0.0.1", free_port()) for s in code_server_specs()]
        team = TeamDeployment(home, home / "dagster", _database(postgres), home / "servers", specs, base_env=clean_env())
        try:
            took.append(round(team.start(), 2))
        finally:
            team.stop()
        print(f"  team set-up start {i}: {took[-1]:.1f}s", flush=True)
    return took


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg(), "python": sys.version.split()[0]}


def _report(results: dict) -> None:
    print(f"\n{results['customers']:,} customers; PostgreSQL initdb+start {results['postgres_first_start_s']}s, "
          f"restart {results['postgres_restart_s']}s; team set-up start {results['team_start_s']}s")
    for backend, runs in results["refresh"].items():
        refresh = [r["wall_s"] for r in runs[1:]] or [runs[0]["wall_s"]]
        cpu = [r["cpu_s"] for r in runs[1:]] or [runs[0]["cpu_s"]]
        server = [r["postgres_cpu_s"] for r in runs[1:]] or [runs[0]["postgres_cpu_s"]]
        print(f"  {backend:<8} first publish {runs[0]['wall_s']:.1f}s; refresh median {statistics.median(refresh):.1f}s "
              f"wall, {statistics.median(cpu):.1f}s CPU (+{statistics.median(server):.1f}s PostgreSQL)")


if __name__ == "__main__":
    sys.exit(main())
