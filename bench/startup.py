"""Start-up costs: each code location loaded in a fresh process on top of `import dagster`,
and `make dev` from start to a UI showing every product materialized."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.measure import clean_env
from bench.systems import ROOT

# What a code server does with a python_file entry of workspace.yaml: import the file, build
# its Definitions and resolve them into a repository (asset graph, jobs, checks).
_LOAD = """
import json, time
start = time.perf_counter()
import dagster
imported = time.perf_counter()
from mesh_platform.workspace import locations
locations()[{name!r}].definitions().get_repository_def()
print(json.dumps([imported - start, time.perf_counter() - imported]))
"""


def location_load(name: str) -> tuple[float, float]:
    """(bare `import dagster`, the location on top of it), in one fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _LOAD.format(name=name)],
        env=clean_env(), cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


_MATERIALIZED = "{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { timestamp } } }"
PRODUCTS = {"customer/profiles", "customer/insights", "orders/history", "preferences/settings", "federation/customer_360"}


def make_dev_seconds(timeout: float = 600) -> float:
    """`make dev` in this checkout, with a fresh MESH_HOME (dependencies already installed):
    seconds until the UI's GraphQL shows every product materialized."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="mesh-dev-bench-") as home:
        env = clean_env(MESH_HOME=home)
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["make", "dev", f"PORT={port}"], cwd=ROOT, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            while time.perf_counter() - start < timeout:
                if proc.poll() is not None:
                    raise RuntimeError(f"make dev exited with {proc.returncode}")
                if _all_materialized(port):
                    return time.perf_counter() - start
                time.sleep(0.5)
            raise TimeoutError(f"make dev: no UI with every product materialized after {timeout}s")
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in its terminal
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _all_materialized(port: int) -> bool:
    try:
        r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": _MATERIALIZED}, timeout=5)
        nodes = r.json()["data"]["assetNodes"]
    except (requests.RequestException, KeyError, TypeError, ValueError):
        return False
    done = {"/".join(n["assetKey"]["path"]) for n in nodes if n["assetMaterializations"]}
    return PRODUCTS <= done


def status_seconds(home: Path, rounds: int = 5) -> float:
    """Median wall time of `mesh status` (a fresh process each) on a refreshed mesh home."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("mesh")), "status"], env=clean_env(MESH_HOME=str(home)),
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
