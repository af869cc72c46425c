"""The commit's modules load in a thread while the step's query runs (mesh_platform.meanwhile),
and that thread is over before the step goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from conftest import ROOT

from mesh_platform import meanwhile

SLOW = """
import threading, time
BY = threading.current_thread().name
time.sleep(0.3)
DONE = time.monotonic()
"""


def test_the_import_runs_beside_the_body_and_ends_before_the_block_does(tmp_path, monkeypatch):
    (tmp_path / "mesh_slow_module.py").write_text(SLOW)
    (tmp_path / "mesh_broken_module.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with meanwhile.importing(("mesh_broken_module", "mesh_slow_module")):
        body_started = time.monotonic()
    left = time.monotonic()
    slow = sys.modules.pop("mesh_slow_module")
    assert slow.BY == "mesh-import" != threading.current_thread().name
    assert body_started < slow.DONE <= left  # the body ran while it imported; the block waited for it
    assert not [t for t in threading.enumerate() if t.name == "mesh-import"]
    # A module that fails to import is passed over (the next one still loads): the step's own import raises it.
    assert "mesh_broken_module" not in sys.modules


# Real runs of orders/history, each in a fresh process as `mesh materialize` runs it: a finder
# ahead of the others sees which thread first asks for pyiceberg (it finds nothing itself).
RUN = """
import json, sys, threading
import dagster as dg
from mesh_platform.meanwhile import COMMIT_MODULES
from mesh_platform.workspace import materialize

class Seen:
    by = {}
    def find_spec(self, name, path=None, target=None):
        if name in COMMIT_MODULES:
            Seen.by.setdefault(name, threading.current_thread().name)
        return None

assert not set(COMMIT_MODULES) & set(sys.modules)
sys.meta_path.insert(0, Seen())
with dg.DagsterInstance.get() as instance:
    result = materialize("orders", instance)
print(json.dumps({"success": result.success, "by": Seen.by,
                  "left": [t.name for t in threading.enumerate() if t.name == "mesh-import"]}))
"""


def test_pyiceberg_loads_beside_the_query_on_a_new_home_and_on_one_with_the_table(mesh_home, tmp_path):
    env = {**os.environ, "MESH_HOME": str(mesh_home), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    for run in ("first publish", "next publish"):  # the second reads the table the first made
        done = subprocess.run([sys.executable, "-c", RUN], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out == {"success": True, "by": dict.fromkeys(meanwhile.COMMIT_MODULES, "mesh-import"), "left": []}, run
