"""The dbt peer: the project in bench/dbt/ (the four products as dbt-duckdb models with enforced
contracts and 34 data tests), run as a scheduled production job runs it: `dbt build` in a fresh
process, its target folder (compiled SQL, artifacts, partial_parse.msgpack) kept between runs.

dbt runs from its own locked environment, bench/dbt/.venv (`make bench-dbt-env`), never from
the platform's. Its products are Parquet files in the run's work folder; its target folder sits
beside it (`<work>-target`), so it outlives the work folder the harness clears before each run.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

from bench.measure import clean_env, run_measured

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "bench" / "dbt"
ENV = PROJECT / ".venv"
DBT = ENV / "bin" / "dbt"
THREADS = 2
PRODUCTS = ("profiles", "history", "settings", "customer_360")
FIXED_COST_CUSTOMERS = 2000  # the engine's share of a run at this scale is a few tenths of a second


def require_env() -> None:
    """The dbt environment must have been built (`make bench-dbt-env`)."""
    if not DBT.exists():
        raise SystemExit(f"the dbt peer's environment is missing ({ENV}): run `make bench-dbt-env`")


def target(work: Path) -> Path:
    return work.parent / f"{work.name}-target"


def command(landing: Path, work: Path, verb: str = "build", target_path: Path | None = None) -> list[str]:
    return [str(DBT), verb, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
            "--target-path", str(target_path or target(work)), "--log-path", str(work / "logs"),
            "--threads", str(THREADS)]


def env(landing: Path, work: Path) -> dict[str, str]:
    """The paths the project reads (sources.yml, profiles.yml) from the environment."""
    return {"BENCH_LANDING": str(Path(landing).resolve()), "BENCH_OUT": str(Path(work).resolve())}


def prepare(landing: Path, work: Path) -> None:
    """Before the first measured run: `dbt parse`, so every run finds partial_parse.msgpack as a
    production job that ran before does (the same environment, so nothing is reparsed)."""
    require_env()
    done = subprocess.run(command(landing, work, "parse"), env=clean_env(**env(landing, work)), cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dbt parse failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")


def results(target_path: Path) -> dict:
    return json.loads((target_path / "run_results.json").read_text())


def steps(work: Path) -> dict[str, dict]:
    """Each model's execution time (its CREATE TABLE with the contract's columns and constraints,
    the COPY to Parquet and the view over it) from run_results.json, and the 34 data tests'
    times summed (two threads run them, so the sum can exceed their share of the wall)."""
    out: dict[str, dict] = {}
    tests = 0.0
    for r in results(target(work))["results"]:
        kind, _, name = r["unique_id"].split(".", 2)
        if kind == "model":
            out[name.split(".")[-1]] = {"s": r["execution_time"]}
        elif kind == "test":
            tests += r["execution_time"]
    out["data tests (sum)"] = {"s": tests}
    return out


def versions() -> str:
    """dbt-core, dbt-duckdb and duckdb as installed in the dbt environment."""
    from importlib.metadata import distributions

    site = list(ENV.glob("lib/python*/site-packages"))
    found = {d.metadata["Name"].lower(): d.version for d in distributions(path=[str(p) for p in site])}
    return ", ".join(f"{n} {found[n]}" for n in ("dbt-core", "dbt-duckdb", "duckdb") if n in found)


def _spans(target_path: Path, started: float, ended: float) -> dict[str, float]:
    """A run's wall split at its first node's start and last node's end (run_results.json):
    before (interpreter, imports, parse or manifest load), the graph (models and tests, with
    dbt's per-node work), after (artifacts, exit)."""
    stamps = [datetime.fromisoformat(t[key].replace("Z", "+00:00")).timestamp()
              for r in results(target_path)["results"] for t in r["timing"] for key in ("started_at", "completed_at")]
    first, last = min(stamps), max(stamps)
    return {"before_s": first - started, "graph_s": last - first, "after_s": ended - last}


def fixed_cost(landing: Path, root: Path, runs: int = 5) -> dict:
    """`dbt build` on a tiny landing set (a few tenths of a second of engine work), `runs` times
    each: cold (a new target folder each run: a full parse, as a job in a fresh container) and
    warm (partial_parse.msgpack kept, as the benchmark runs it); the limit script on the same
    files for reference. Every run's wall, and how dbt's runs split (see _spans)."""
    import sys

    require_env()
    root.mkdir(parents=True, exist_ok=True)
    work, out = root / "dbt", {}
    for mode in ("cold", "warm"):
        walls, cpus, spans = [], [], []
        for i in range(runs):
            target_path = root / (f"dbt-cold-target-{i}" if mode == "cold" else "dbt-warm-target")
            if mode == "cold" or i == 0:
                shutil.rmtree(target_path, ignore_errors=True)
            if mode == "warm" and i == 0:  # the earlier run a scheduled job has behind it
                subprocess.run(command(landing, work, "parse", target_path), env=clean_env(**env(landing, work)),
                               cwd=ROOT, check=True, capture_output=True)
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            started = time.time()
            m = run_measured(command(landing, work, "build", target_path), clean_env(**env(landing, work)), ROOT,
                             root / f"dbt-{mode}.log")
            ended = time.time()
            if m.returncode != 0:
                raise SystemExit(f"dbt ({mode}) failed:\n{m.output[-4000:]}")
            walls.append(m.wall_s)
            cpus.append(m.cpu_s)
            spans.append(_spans(target_path, started, ended))
            if mode == "cold":
                shutil.rmtree(target_path)
        out[f"dbt_{mode}"] = {"wall_s": walls, "cpu_s": cpus, **{k: [s[k] for s in spans] for k in spans[0]}}
    walls, cpus = [], []
    for _ in range(runs):
        limit_out = root / "limit"
        shutil.rmtree(limit_out, ignore_errors=True)
        limit_out.mkdir(parents=True)
        m = run_measured([sys.executable, "-m", "bench.limit", "--landing", str(landing), "--out", str(limit_out)],
                         clean_env(), ROOT, root / "limit.log")
        if m.returncode != 0:
            raise SystemExit(f"limit failed:\n{m.output[-4000:]}")
        walls.append(m.wall_s)
        cpus.append(m.cpu_s)
    out["limit"] = {"wall_s": walls, "cpu_s": cpus}
    return out


def render_fixed_cost(fixed: dict, customers: int) -> list[str]:
    med = statistics.median
    lines = [f"## dbt's fixed cost ({customers:,} customers, medians of {len(fixed['limit']['wall_s'])} runs)", "",
             "| run | wall s | CPU s | before the first node s | models and tests s | after the last node s |",
             "|---|---:|---:|---:|---:|---:|"]
    for mode, what in (("cold", "dbt build, cold (no target folder: full parse)"),
                       ("warm", "dbt build, warm (partial_parse.msgpack kept)")):
        f = fixed[f"dbt_{mode}"]
        lines.append(f"| {what} | {med(f['wall_s']):.2f} | {med(f['cpu_s']):.2f} | {med(f['before_s']):.2f} | {med(f['graph_s']):.2f} "
                     f"| {med(f['after_s']):.2f} |")
    lines.append(f"| limit script | {med(fixed['limit']['wall_s']):.2f} | {med(fixed['limit']['cpu_s']):.2f} | | | |")
    return lines + [""]

