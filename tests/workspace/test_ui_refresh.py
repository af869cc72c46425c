"""`mesh materialize` through a running UI: each location's run is launched once the products it
reads have ended, not once every earlier location's run has, and a Ctrl-C terminates the runs it
launched and reports them, as without a UI (and `mesh ui --materialize`, `make dev`, then stops its
UI as well).

The UI's runs hold customer/insights' step at its compute until the test lets it go
(mesh_platform.faults, for that product only); one UI serves the module.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import dagster as dg
import pytest
from conftest import ROOT
from held import MESH, mesh_env
from landing import write_landing
from workspace.server import READY_WITHIN, STOP_WITHIN, DagsterServer, leftovers

# Beyond it the held step goes on by itself (mesh_platform.faults.WAIT_SECONDS, 120 s): a
# customer_360 that waited for insights' run would come later than this.
WHILE_HELD = 90
IN_PROGRESS = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-refresh")
    home = folder / "mesh"
    write_landing(home / "landing")
    server = DagsterServer(["ui"], home=home, executable="mesh", env={
        "MESH_FAULTPOINT": "compute", "MESH_FAULTPOINT_PRODUCT": "customer/insights",
        "MESH_FAULTPOINT_READY": str(folder / "insights.ready"),
        "MESH_FAULTPOINT_RESUME": str(folder / "insights.resume"),
    }).start()
    try:
        server.wait_ready(timeout=READY_WITHIN)
        yield server, folder
    finally:
        server.stop()
        server.kill_leftovers()


def _materialize_until_insights_is_held(ui, out):
    server, folder = ui
    ready, resume = folder / "insights.ready", folder / "insights.resume"
    ready.unlink(missing_ok=True)
    resume.unlink(missing_ok=True)
    with open(out, "w") as f:
        proc = subprocess.Popen([MESH, "materialize"], env=mesh_env(server.home), cwd=ROOT, stdout=f,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_WITHIN
    while not ready.exists():
        assert proc.poll() is None, out.read_text()
        assert time.monotonic() < deadline, f"customer/insights never reached its compute:\n{out.read_text()}"
        time.sleep(0.2)
    return proc, resume


def test_a_run_through_the_ui_waits_only_for_what_it_reads(ui, tmp_path):
    out = tmp_path / "materialize.out"
    proc, resume = _materialize_until_insights_is_held(ui, out)
    try:
        held_until = time.monotonic() + WHILE_HELD
        while not re.search(r"federation/customer_360\s+PASS", out.read_text()):
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < held_until, (
                f"customer_360 did not publish within {WHILE_HELD}s of customer/insights being held:\n"
                f"{out.read_text()}\n{ui[0].log()}")
            time.sleep(0.2)
        assert not re.search(r"customer/insights\s+(PASS|WARN|BLOCKED|ERROR)", out.read_text())
        resume.touch()
        assert proc.wait(120) == 0, out.read_text()
        assert "PASS=5 WARN=0 BLOCKED=0 ERROR=0 SKIP=0" in out.read_text(), out.read_text()
    finally:
        resume.touch()
        if proc.poll() is None:
            proc.kill()


def test_a_ctrl_c_terminates_the_runs_it_launched_and_reports_them(ui, tmp_path):
    server, _ = ui
    out = tmp_path / "materialize.out"
    proc, resume = _materialize_until_insights_is_held(ui, out)
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 1, out.read_text()
        text = out.read_text()
        assert "Traceback" not in text, text
        # Held, so not published: stopped with its run (mesh's), or left to the run building it.
        assert re.search(r"customer/insights\s+(ERROR|SKIP)", text), text
        for key in ("orders/history", "preferences/settings", "customer/profiles"):  # ended before the Ctrl-C
            assert re.search(rf"{key}\s+PASS", text), text
        passed, failed, skipped = map(int, re.search(r"PASS=(\d) WARN=0 BLOCKED=0 ERROR=(\d) SKIP=(\d)", text).groups())
        assert passed >= 3 and failed + skipped >= 1 and passed + failed + skipped == 5, text
        with dg.DagsterInstance.from_config(str(server.dagster_home)) as instance:
            ours = [r for r in instance.get_runs() if r.tags.get("mesh/trigger") == "mesh-cli"]
        assert ours and not [r.run_id for r in ours if r.status in IN_PROGRESS], [(r.job_name, r.status) for r in ours]
    finally:
        resume.touch()
        if proc.poll() is None:
            proc.kill()


def test_a_ctrl_c_while_make_dev_materializes_stops_the_ui_too(tmp_path):
    """`mesh ui --materialize` (`make dev`) stopped while a product is still being built: the
    refresh ends its runs, and the UI with everything it started stops as after the refresh."""
    home = tmp_path / "mesh"
    write_landing(home / "landing")
    ready = tmp_path / "insights.ready"
    dev = DagsterServer(["ui", "--materialize"], home=home, executable="mesh", env={
        "MESH_FAULTPOINT": "compute", "MESH_FAULTPOINT_PRODUCT": "customer/insights",
        "MESH_FAULTPOINT_READY": str(ready), "MESH_FAULTPOINT_RESUME": str(tmp_path / "never"),
    }).start()
    try:
        deadline = time.monotonic() + READY_WITHIN
        while not ready.exists():
            assert dev.proc.poll() is None and time.monotonic() < deadline, dev.log()
            time.sleep(0.2)
        identities = {(p.pid, p.create_time()) for p in dev.descendants()}
        assert dev.stop(grace=STOP_WITHIN) == 0 and not dev.killed, dev.log()
        assert "stopping the Dagster UI and everything it started" in dev.log_path.read_text(), dev.log()
        left = leftovers(identities, str(dev.dagster_home), str(dev.port))
        assert left == [], "processes left behind:\n" + "\n".join(left) + f"\n{dev.log()}"
    finally:
        dev.stop()
        dev.kill_leftovers()
