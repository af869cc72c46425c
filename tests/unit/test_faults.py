"""A fault point, where the crash-safety tests stop a process, gives way to a signal at once,
whichever of the process's threads the kernel hands it to."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

# The signal goes to a thread other than the main one, as the kernel may choose for a signal
# sent to the process while that thread runs (in a step, the import beside the query).
STOPPED_BY_ANOTHER_THREAD = """
import os, signal, sys, threading, time
from mesh_platform import faults

signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Dagster's run does: stop, then unwind

def signal_from_here():
    while not os.path.exists(os.environ["MESH_FAULTPOINT_READY"]):
        time.sleep(0.01)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
    time.sleep(600)

threading.Thread(target=signal_from_here, daemon=True).start()
try:
    faults.point("compute")
except KeyboardInterrupt:
    sys.exit(3)
"""


def test_a_signal_delivered_to_another_thread_stops_the_fault_point(tmp_path):
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env |= {"MESH_FAULTPOINT": "compute", "MESH_FAULTPOINT_READY": str(ready), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_BY_ANOTHER_THREAD], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Before: one 120 s sleep, which the handler interrupts only once it has ended.
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert ready.read_text() == str(proc.pid)
