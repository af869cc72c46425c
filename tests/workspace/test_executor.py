"""The locations' executor, in real runs created as the UI creates them: a run of one product
executes in the run's own process (no fork server, no step process); a run of several products
gives each step its own process; a run tagged mesh/in_process keeps them all in its process.

The runs execute in a fresh Python process, as `mesh` runs them: the step processes fork from
multiprocessing's fork server, which keeps the environment of the process that started it, so a
test process that changes MESH_HOME between tests must not be the one that starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT

RUNS = """
import json, os
import dagster as dg
from mesh_platform.executor import IN_PROCESS_TAG
from mesh_platform.workspace import materialize

out = {"here": os.getpid(), "runs": []}
with dg.DagsterInstance.get() as instance:
    for location, in_process in (("orders", False), ("preferences", False), ("customer", False), ("customer", True)):
        result = materialize(location, instance, in_process=in_process)
        starts = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.STEP_START).records
        out["runs"].append({
            "success": result.success,
            "tagged": instance.get_run_by_id(result.run_id).tags.get(IN_PROCESS_TAG),
            "pids": {r.event_log_entry.dagster_event.step_key: r.event_log_entry.dagster_event.pid for r in starts},
        })
print(json.dumps(out))
"""


def test_one_step_here_several_apart(mesh_home, tmp_path):
    env = {**os.environ, "MESH_HOME": str(mesh_home), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    done = subprocess.run([sys.executable, "-c", RUNS], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    here, (orders, preferences, apart, together) = out["here"], out["runs"]
    assert all(r["success"] for r in out["runs"])

    assert orders["pids"] == {"orders__history": here}  # one product each: in the run's process
    assert preferences["pids"] == {"preferences__settings": here}
    assert set(apart["pids"]) == {"customer__profiles", "customer__insights"}  # profiles, then insights
    assert here not in apart["pids"].values() and len(set(apart["pids"].values())) == 2
    assert (together["tagged"], together["pids"]) == ("true", {"customer__profiles": here, "customer__insights": here})
