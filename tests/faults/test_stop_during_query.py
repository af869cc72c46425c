"""A real `mesh materialize` stopped by SIGINT or SIGTERM while its step's DuckDB query runs: in
the product's computation, or in a quality rule of the audit. The step ends as stopped (not as
DuckDB's "Query interrupted" failure, not as a broken rule), at once (the query would run for
tens of minutes), and nothing is published or recorded as blocked.

The orders location is a copy, in a workspace of its own (MESH_WORKSPACE), whose product or
contract runs that query; a fault point holds the step just before it (mesh_platform.faults)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import ROOT
from held import MESH, mesh_env
from pyiceberg.exceptions import NoSuchTableError

from mesh_platform.audit import AuditLog
from mesh_platform.refresh import STOPPED
from mesh_platform.storage import Catalog

FOREVER = "SELECT sum(hash(a) % 7) FROM range(1000000000000) t(a)"
STOP_WITHIN = 30  # seconds from the signal to the end of `mesh materialize`

# phase -> (the fault point just before the query, what the copy runs it in)
PHASES = {"compute": "compute", "audit": "write"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("landing") / "mesh"
    done = subprocess.run([MESH, "seed", "--customers", "300"], env=mesh_env(home), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return home / "landing"


def workspace(folder: Path, phase: str) -> Path:
    orders = folder / "domains/orders"
    shutil.copytree(ROOT / "domains/orders", orders, ignore=shutil.ignore_patterns("__pycache__"))
    if phase == "compute":
        (orders / "products/history.py").write_text(
            "from mesh_platform import product\n\n\n"
            '@product(sources=["orders", "order_lines"])\n'
            "def history(ctx):\n"
            f'    ctx.sql("{FOREVER}").fetchall()\n'
            '    return ctx.sql("SELECT 1 AS never")\n'
        )
    else:
        contract = orders / "contracts/history.odcs.yaml"
        rule = "query: SELECT count(*) FROM ${object} WHERE first_order_at > last_order_at"
        assert rule in contract.read_text()
        contract.write_text(contract.read_text().replace(rule, f"query: {FOREVER}"))
    (folder / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: domains/orders/definitions.py\n"
        "      location_name: orders\n      working_directory: .\n"
    )
    return folder / "workspace.yaml"


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", sorted(PHASES))
def test_a_stop_during_a_query_ends_the_step_as_stopped_at_once(tmp_path, landing, phase, signame):
    home = tmp_path / "mesh"
    shutil.copytree(landing, home / "landing")
    ready, resume = tmp_path / "ready", tmp_path / "resume"
    env = mesh_env(home, MESH_WORKSPACE=str(workspace(tmp_path / "ws", phase)), MESH_FAULTPOINT=PHASES[phase],
                   MESH_FAULTPOINT_READY=str(ready), MESH_FAULTPOINT_RESUME=str(resume))
    proc = subprocess.Popen([MESH, "materialize", "orders"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the step never reached the point before its query"
            time.sleep(0.1)
        resume.touch()
        time.sleep(1.5)  # the query is under way
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(getattr(signal, signame))
        sent = time.monotonic()
        out, _ = proc.communicate(timeout=STOP_WITHIN)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert took < STOP_WITHIN
    assert proc.returncode == 1, out
    assert "orders/history  ERROR" in out and f"\n    {STOPPED}\n" in out, out
    assert "Query interrupted" not in out and "Traceback" not in out, out
    assert "PASS=0 WARN=0 BLOCKED=0 ERROR=1 SKIP=0" in out, out
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [run] = instance.get_runs()
        [failure] = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert failure.event_log_entry.dagster_event.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError"
    with pytest.raises(NoSuchTableError):  # nothing published: not even a table
        Catalog(home).history("orders", "history")
    log = AuditLog(home)
    assert log.entries(action="publish") == [] and log.entries(action="publish_blocked") == []
