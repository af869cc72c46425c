"""`make bench`: the mesh against the raw DuckDB limit, dbt and the usual pandas way.

For each scale: landing data from the project's seeded generator, then several rounds in
which every system refreshes all four products from the same files, in rotating order. Each
run is measured (wall, CPU, peak RSS of its process tree) and its outputs are checked equal
to the others' (order-independent); a difference stops the benchmark. Medians are reported.
Then dbt's fixed cost per run (cold and warm, on a tiny landing set), each code location's load
time in fresh processes, and `make dev` to a materialized UI.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb

from bench import dbt_peer
from bench.compare import compare
from bench.measure import clean_env, run_measured
from bench.startup import location_load, make_dev_seconds, status_seconds
from bench.systems import LIMIT_2GIB, PRODUCTS, ROOT, SYSTEMS, System
from mesh_platform.contracts import load_contract

LOCATIONS = ["customer", "orders", "preferences", "federation"]
TEN_MILLION = 10_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scales", default="100000,1000000", help="customers per scale, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--cap", action="append", default=[], metavar="SYSTEM@SCALE=N",
        help="run SYSTEM in only the first N rounds at SCALE (e.g. usual@1000000=1: it takes minutes)",
    )
    parser.add_argument("--load-rounds", type=int, default=5, help="fresh processes per location")
    parser.add_argument("--fixed-runs", type=int, default=5,
                        help=f"runs of each kind timing dbt's fixed cost at {dbt_peer.FIXED_COST_CUSTOMERS:,} customers (0: skip)")
    parser.add_argument("--no-dev", action="store_true", help="skip timing `make dev`")
    parser.add_argument("--ten-million", action="store_true",
                        help="also 10,000,000 customers (about 100M orders; seeding streams): one round of the mesh, "
                             "the limit and the limit held to 2 GiB (limit_2gib, added to the systems at every scale: "
                             "the reference for the 10M growth target), about 20 minutes more and 20 GB of disk")
    parser.add_argument("--cloud", action="store_true",
                        help="also each domain product at 1,000,000 customers on the AWS emulator against locally "
                             "(medians of 3 rounds), "
                             "and the federation's refresh on the BigQuery emulator")
    parser.add_argument("--sandbox", action="store_true",
                        help="also the 1,000,000-customer refresh with and without the sandbox, 3 rounds each")
    parser.add_argument("--dir", type=Path, default=ROOT / ".bench", help="landing data, work dirs, results")
    args = parser.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]
    systems = [SYSTEMS[s] for s in args.systems.split(",")]
    caps = {tuple(c.split("=")[0].split("@")): int(c.split("=")[1]) for c in args.cap}
    if args.ten_million and TEN_MILLION not in scales:
        scales.append(TEN_MILLION)
        if LIMIT_2GIB not in systems:
            systems.append(LIMIT_2GIB)
        caps.update({(s.name, str(TEN_MILLION)): int(s.name in ("mesh", "limit", LIMIT_2GIB.name)) for s in systems})
    with_dbt = any(s.name == "dbt" for s in systems)
    if with_dbt:
        dbt_peer.require_env()

    results: dict = {"scales": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                     "machine": machine() + (f"; dbt peer (own environment): {dbt_peer.versions()}" if with_dbt else "")}
    for scale in scales:
        landing = _landing(args.dir, scale)
        runs: dict[str, list[dict]] = {s.name: [] for s in systems}
        _read_through(landing)
        for system in systems:
            if system.prepare:
                system.prepare(landing, args.dir / "work" / str(scale) / system.name)
        for round_ in range(args.rounds):
            order = systems[round_ % len(systems):] + systems[: round_ % len(systems)]
            order = [s for s in order if round_ < caps.get((s.name, str(scale)), args.rounds)]
            if not order:  # every system capped below this round (10M: one round)
                break
            works = {}
            for system in order:
                work = args.dir / "work" / str(scale) / system.name
                r = _run(system, landing, work)
                if "failed" in r:  # reported with the results; the other systems still run
                    results.setdefault("failures", {}).setdefault(str(scale), {})[system.name] = r["failed"]
                    print(f"  {scale:>9,} round {round_ + 1} {system.name:<16} FAILED after {r['wall_s']:.1f}s "
                          f"(peak {r['peak_rss_mb']:.0f} MiB):\n{r['failed']}", flush=True)
                    continue
                works[system.name] = work
                runs[system.name].append(r)
                print(f"  {scale:>9,} round {round_ + 1} {system.name:<16} {r['wall_s']:7.1f}s wall "
                      f"{r['cpu_s']:7.1f}s cpu {r['peak_rss_mb']:7.0f} MiB", flush=True)
            _verify([s for s in order if s.name in works], works,
                    products=PRODUCTS if round_ == 0 else ["customer_360"])
        results["scales"][scale] = {name: rs for name, rs in runs.items() if rs}
        _save(args.dir, results)  # kept even if a later part fails

    if with_dbt and args.fixed_runs:
        customers = dbt_peer.FIXED_COST_CUSTOMERS
        results["dbt_fixed_cost"] = dbt_peer.fixed_cost(
            _landing(args.dir, customers), args.dir / "work" / "fixed-cost", args.fixed_runs)
        print("\n".join(dbt_peer.render_fixed_cost(results["dbt_fixed_cost"], customers)), flush=True)
        _save(args.dir, results)
    results["location_load"] = _location_loads(args.load_rounds)
    mesh_home = args.dir / "work" / str(max(scales)) / "mesh"
    if (mesh_home / "catalog.db").exists():
        results["status_s"] = status_seconds(mesh_home)
        print(f"  mesh status: {results['status_s']:.2f}s")
    _save(args.dir, results)
    if args.sandbox:
        from bench import sandbox_cost

        on, off = sandbox_cost.measure(1_000_000, 3, args.dir / "sandbox")
        results["sandbox"] = {"on_s": on, "off_s": off}
        _save(args.dir, results)
    if args.cloud:
        from bench import cloud_publish

        results["cloud"] = {"customers": 1_000_000,
                            "products": cloud_publish.measure(1_000_000, ["orders", "preferences", "customer"],
                                                              bigquery=True)}
        print("\n".join(cloud_publish.render(results["cloud"]["products"], 1_000_000)), flush=True)
        _save(args.dir, results)
    if not args.no_dev:
        results["make_dev_s"] = make_dev_seconds()
        print(f"  make dev: {results['make_dev_s']:.1f}s to a UI with every product materialized")
        _save(args.dir, results)
    report = render(results)
    (args.dir / "report.md").write_text(report)
    print(report)
    return 0


def machine() -> str:
    """What the figures were measured on."""
    import platform
    from importlib.metadata import version

    import psutil

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    libraries = ", ".join(f"{name} {version(name)}" for name in ("dagster", "duckdb", "pyiceberg", "pandas",
                                                                "great_expectations"))
    return (f"{psutil.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}; {libraries}")


def _save(root: Path, results: dict) -> None:
    (root / "results.json").write_text(json.dumps(results, indent=1))


def _landing(root: Path, customers: int) -> Path:
    from mesh_platform.seed import generate_landing

    landing = root / f"landing-{customers}"
    done = landing / ".complete"
    if not done.exists():
        shutil.rmtree(landing, ignore_errors=True)
        print(f"seeding {customers:,} customers into {landing}", flush=True)
        generate_landing(landing, customers, 7)
        done.write_text(f"{customers} customers, seed 7\n")
    return landing


def _read_through(landing: Path) -> None:
    """Read every landing file once, unmeasured: the first system of a scale's first round (at
    10M the only round, 8.7 GB) would otherwise read them from disk, and the next from the page
    cache."""
    for path in sorted(landing.rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                while f.read(8 << 20):
                    pass


def _run(system: System, landing: Path, work: Path) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.time()
    m = run_measured(
        system.command(landing, work), clean_env(**system.env(landing, work)), ROOT, work.parent / f"{system.name}.log"
    )
    if m.returncode != 0:
        return {"wall_s": m.wall_s, "peak_rss_mb": m.peak_rss_mb,
                "failed": f"exit code {m.returncode}; the end of its output:\n{m.output[-2000:]}"}
    steps = system.steps(work)
    # A step in a process of its own (Dagster's multiprocess executor) has its own CPU and peak
    # RSS; steps sharing the run's process (in-process executor) cannot be told apart.
    pids = [info.get("pid") for info in steps.values()]
    for info in steps.values():
        pid = info.pop("pid", None)
        if pid is not None and pids.count(pid) == 1 and pid in m.by_pid:
            info["cpu_s"], info["peak_rss_mb"] = m.by_pid[pid]
    return {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "peak_rss_mb": m.peak_rss_mb, "peak_tree": m.peak_tree,
            "steps": {name: info["s"] for name, info in steps.items()},
            "step_cpu_s": {name: info["cpu_s"] for name, info in steps.items() if "cpu_s" in info},
            "step_peak_rss_mb": {name: info["peak_rss_mb"] for name, info in steps.items() if "peak_rss_mb" in info},
            **({"timeline": system.timeline(work, started, m.wall_s)} if system.timeline else {})}


def _verify(systems: list[System], works: dict[str, Path], products) -> None:
    con = duckdb.connect()
    for s in systems:
        if s.database:
            con.execute(f"ATTACH '{s.database(works[s.name])}' AS {s.name} (READ_ONLY)")
    for product in products:
        contract = load_contract(PRODUCTS[product][1])
        rows = compare(con, contract, {s.name: s.output(works[s.name], product) for s in systems})
        print(f"    {product}: {rows:,} rows, identical in {', '.join(s.name for s in systems)}", flush=True)
    con.close()


def _location_loads(rounds: int) -> dict:
    loads: dict[str, list[float]] = {name: [] for name in LOCATIONS}
    bare: list[float] = []
    for _ in range(rounds):
        for name in LOCATIONS:
            imported, location = location_load(name)
            bare.append(imported)
            loads[name].append(location)
    return {"import_dagster_s": bare, **loads}


def _median(values) -> float:
    return statistics.median(values)


def render(results: dict) -> str:
    lines = [f"# Benchmark results ({results['started']})", "", f"Machine: {results['machine']}.", ""]
    scales = sorted(results["scales"], key=int)
    for scale in scales:
        runs = results["scales"][scale]
        lines += [f"## {int(scale):,} customers (medians of the rounds run)", "",
                  "| system | rounds | wall s | CPU s | peak RSS MiB (process tree) |", "|---|---:|---:|---:|---:|"]
        for name, rs in runs.items():
            lines.append(
                f"| {name} | {len(rs)} | {_median([r['wall_s'] for r in rs]):.1f} | {_median([r['cpu_s'] for r in rs]):.1f} "
                f"| {_median([r['peak_rss_mb'] for r in rs]):.0f} |"
            )
        lines += ["", *_ratios(runs), "", *_step_table(runs), "", *_timeline_table(runs)]
    if len(scales) > 1:
        small, large = scales[0], scales[-1]
        factor = int(large) / int(small)
        lines += [f"## Growth: {int(large):,} vs {int(small):,} customers ({factor:g}x the data)", ""]
        for name in results["scales"][large]:
            if name in results["scales"][small]:
                a = _median([r["wall_s"] for r in results["scales"][small][name]])
                b = _median([r["wall_s"] for r in results["scales"][large][name]])
                lines.append(f"- {name}: {b / a:.2f}x the time")
        lines.append("")
    lines += _targets(results)
    for scale, systems in results.get("failures", {}).items():
        for name, why in systems.items():
            lines += [f"## {name} failed at {int(scale):,} customers", "", "```", why.strip(), "```", ""]
    if "dbt_fixed_cost" in results:
        lines += dbt_peer.render_fixed_cost(results["dbt_fixed_cost"], dbt_peer.FIXED_COST_CUSTOMERS)
    loads = results["location_load"]
    if loads["import_dagster_s"]:  # none with --load-rounds 0
        lines += ["## Code location load, fresh process (medians)", "",
                  f"Bare `import dagster`: {_median(loads['import_dagster_s']):.2f}s. On top of it:", ""]
        lines += [f"- {name}: {_median(v):.2f}s" for name, v in loads.items() if name != "import_dagster_s"]
    if "make_dev_s" in results:
        lines += ["", f"`make dev` (dependencies installed, default scale) to a UI with every product "
                      f"materialized: {results['make_dev_s']:.0f}s"]
    return "\n".join(lines) + "\n"


def _step_table(runs: dict) -> list[str]:
    lines = [
        "Per step (medians). A Dagster step's CPU and peak RSS are its own process's, start-up "
        "included; '-' where steps share the run's process (in-process executor). The limit's are "
        "its one process's while the statement ran, tables kept from earlier steps included. dbt's are "
        "its models' execution times from run_results.json and its data tests' times summed (two "
        "threads in one process: no CPU or RSS of their own).", "",
        "| system | step | s | CPU s | peak RSS MiB |", "|---|---|---:|---:|---:|",
    ]
    for name, rs in runs.items():
        for step in rs[0]["steps"]:
            cells = [_median([r["steps"][step] for r in rs])]
            for key in ("step_cpu_s", "step_peak_rss_mb"):
                values = [r.get(key, {}).get(step) for r in rs]
                cells.append(_median(values) if None not in values else None)
            lines.append(f"| {name} | {step} | " + " | ".join(
                "-" if v is None else f"{v:.{0 if i == 2 else 2}f}" for i, v in enumerate(cells)) + " |")
    return lines


# Where a refresh's time goes (bench.timeline): (key, what it is), the first three adding up to the wall.
PHASES = [
    ("before_runs_s", "before its first run: Python, Dagster and its instance, the selection, what the forks share"),
    ("in_runs_s", "in its runs (runs side by side counted once)"),
    ("between_and_after_runs_s", "between its runs and after the last"),
]
RUN_PARTS = [
    ("dagster_outside_steps_s", "Dagster outside the steps: run start, resources, log capture, planned events, run end"),
    ("compute_s", "the products' computation: reading the sources, the query, writing the Parquet file"),
    ("audit_s", "the contracts' checks"),
    ("publish_s", "the commits: the Iceberg snapshot, the first publish's grants"),
    ("step_platform_s", "the rest of the steps: Dagster recording their check results, log lines and materializations "
                        "as events; the platform's grants, previous version, inputs and sandbox"),
]


def _timeline_table(runs: dict) -> list[str]:
    """Where each system's refresh time went (medians), for the systems that say (the mesh's)."""
    lines = []
    for name, rs in runs.items():
        if not all("timeline" in r for r in rs):
            continue
        med = {k: _median([r["timeline"][k] for r in rs]) for k in rs[0]["timeline"]}
        lines += [f"Where {name}'s refresh time went (medians; from its runs' event log):", "",
                  "| part | s |", "|---|---:|"]
        lines += [f"| {what} | {med[key]:.2f} |" for key, what in PHASES]
        lines += [f"| wall | {_median([r['wall_s'] for r in rs]):.2f} |", "",
                  f"Summed over its {med['runs']:.0f} runs ({med['events']:.0f} events recorded; runs side by side "
                  "overlap, so these can add up to more than the time in runs):", "", "| part | s |", "|---|---:|"]
        lines += [f"| {what} | {med[key]:.2f} |" for key, what in RUN_PARTS] + [""]
    return lines


GIB = 1024  # MiB


def _targets(results: dict) -> list[str]:
    """The performance issues' targets, each judged met or not on this run's medians; a target
    whose measurement this run did not make is listed as not measured."""
    scales = {int(k): v for k, v in results["scales"].items()}

    def wall(scale, name):
        runs = scales.get(scale, {}).get(name)
        return _median([r["wall_s"] for r in runs]) if runs else None

    def peak(scale):
        runs = scales.get(scale, {}).get("mesh")
        return _median([r["peak_rss_mb"] for r in runs]) if runs else None

    rows = []
    for scale, goal in ((1_000_000, 1.3), (100_000, 2.5)):
        mesh, limit, dbt = wall(scale, "mesh"), wall(scale, "limit"), wall(scale, "dbt")
        rows.append((f"{scale:,}: whole refresh, mesh / limit", mesh and limit and mesh / limit, f"<= {goal}x",
                     lambda r, g=goal: r <= g, "{:.2f}x"))
        rows.append((f"{scale:,}: whole refresh, mesh / dbt", mesh and dbt and mesh / dbt, "< 1x (faster than dbt)",
                     lambda r: r < 1, "{:.2f}x"))
    if wall(1_000_000, "mesh") and wall(1_000_000, "limit"):
        large = scales[1_000_000]
        c360 = _median([r["steps"]["customer_360"] for r in large["mesh"]]) / _median(
            [r["steps"]["customer_360"] for r in large["limit"]])
        rows.append(("1,000,000: customer_360 step, mesh / limit", c360, "<= 1.25x", lambda r: r <= 1.25, "{:.2f}x"))
    rows.append(("1,000,000: peak RSS of the mesh's refresh (process tree)", peak(1_000_000), "<= 1.5 GiB",
                 lambda r: r <= 1.5 * GIB, "{:.0f} MiB"))
    usual, mesh = wall(1_000_000, "usual"), wall(1_000_000, "mesh")
    if usual:
        rows.append(("1,000,000: whole refresh, usual / mesh", mesh and usual / mesh, ">= 5x", lambda r: r >= 5, "{:.1f}x"))
    rows.append(("10,000,000: peak RSS of the mesh's refresh (process tree)", peak(10_000_000), "<= 2 GiB",
                 lambda r: r <= 2 * GIB, "{:.0f} MiB"))
    failed = results.get("failures", {}).get(str(10_000_000), {}).get("mesh")
    if failed:
        rows[-1] = (rows[-1][0], "failed", rows[-1][2], None, "")
    big = wall(10_000_000, "mesh")
    rows.append(("10,000,000: mesh time / its time at 1,000,000", "failed" if failed else big and mesh and big / mesh,
                 "<= 11x", lambda r: r <= 11, "{:.2f}x"))
    for name in ("limit", LIMIT_2GIB.name):  # the same growth for the script, in memory and held to 2 GiB
        at_10m, at_1m = wall(10_000_000, name), wall(1_000_000, name)
        if at_10m and at_1m:
            rows.append((f"10,000,000: {name} time / its time at 1,000,000", at_10m / at_1m, "reported", None, "{:.2f}x"))
    loads = [_median(v) for k, v in results.get("location_load", {}).items() if k != "import_dagster_s" and v]
    rows.append(("slowest code location load on top of `import dagster`", max(loads) if loads else None, "<= 0.5 s",
                 lambda r: r <= 0.5, "{:.2f} s"))
    rows.append(("`make dev` to a UI with every product materialized", results.get("make_dev_s"), "<= 45 s",
                 lambda r: r <= 45, "{:.1f} s"))
    rows.append(("`mesh status`", results.get("status_s"), "< 1 s", lambda r: r < 1, "{:.2f} s"))
    sandbox = results.get("sandbox")
    rows.append(("1,000,000: sandboxing, refresh sandboxed / unsandboxed",
                 sandbox and sandbox["on_s"] / sandbox["off_s"], "<= 1.05x", lambda r: r <= 1.05, "{:.3f}x"))
    cloud = results.get("cloud")
    if cloud:
        for key, by_where in cloud["products"].items():
            if key == "federation on BigQuery":  # reported, no target
                rows.append((f"{cloud['customers']:,}: the federation's refresh on the BigQuery emulator",
                             by_where["run_s"], "reported", None, "{:.1f} s"))
            elif "emulator" in by_where:  # the product's step: compute, audit, publish (upload and commit)
                cost = {w: sum(m[k] for k in ("compute_s", "audit_s", "publish_s")) for w, m in by_where.items()}
                rows.append((f"{cloud['customers']:,}: {key} materialized on the AWS emulator / locally",
                             cost["emulator"] / cost["local"], "<= 1.5x", lambda r: r <= 1.5, "{:.2f}x"))
    else:
        rows.append(("1,000,000: a product published on the AWS emulator / locally", None, "<= 1.5x", None, ""))
    lines = ["## Targets", "", "| target | measured | goal | met |", "|---|---:|---:|---|"]
    for name, value, goal, ok, fmt in rows:
        if value == "failed":
            lines.append(f"| {name} | the run failed (below) | {goal} | **no** |")
        elif value is None:
            lines.append(f"| {name} | not measured | {goal} | - |")
        elif ok is None:
            lines.append(f"| {name} | {fmt.format(value)} | {goal} | - |")
        else:
            lines.append(f"| {name} | {fmt.format(value)} | {goal} | {'yes' if ok(value) else '**no**'} |")
    return lines + [""]


def _ratios(runs: dict) -> list[str]:
    def wall(name):
        return _median([r["wall_s"] for r in runs[name]])

    def step(name, key):
        return _median([r["steps"][key] for r in runs[name]])

    out = []
    if "mesh" in runs and "limit" in runs:
        out.append(f"- whole refresh, mesh / limit: {wall('mesh') / wall('limit'):.2f}x")
        out.append(f"- customer_360 step, mesh / limit: {step('mesh', 'customer_360') / step('limit', 'customer_360'):.2f}x")
    if "mesh_in_process" in runs and "limit" in runs:
        out.append(f"- whole refresh, mesh in-process / limit: {wall('mesh_in_process') / wall('limit'):.2f}x")
    if "mesh" in runs and "usual" in runs:
        out.append(f"- whole refresh, usual / mesh: {wall('usual') / wall('mesh'):.2f}x")
    if "dbt" in runs and "limit" in runs:
        out.append(f"- whole refresh, dbt / limit: {wall('dbt') / wall('limit'):.2f}x")
        out.append(f"- customer_360 step, dbt / limit: {step('dbt', 'customer_360') / step('limit', 'customer_360'):.2f}x")
    if "dbt" in runs and "mesh" in runs:
        out.append(f"- whole refresh, mesh / dbt: {wall('mesh') / wall('dbt'):.2f}x")
    return out


if __name__ == "__main__":
    sys.exit(main())
