"""A stop ends a step's DuckDB query at once, and the block around it as stopped
(mesh_platform.stops), wherever the signal lands and whatever DuckDB does with the handler.

Each case runs in a process of its own: signals, their handlers and the wake-up fd are the
process's main thread's. The query would scan 10^12 rows (tens of minutes); the process must end
within 30 s of the signal.

Its SIGINT and SIGTERM handlers only note the signal, as Dagster's do between steps: DuckDB's
Python client then runs the handler when it polls for signals and goes on with the query, so
nothing but the watcher's interrupt can end it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

PRELUDE = """
import os, signal, sys, threading, time
import dagster as dg
import duckdb
from mesh_platform import stops

noted = []
for number in (signal.SIGINT, signal.SIGTERM):
    signal.signal(number, lambda signum, frame: noted.append(signum))

FOREVER = "SELECT sum(hash(a) % 7) FROM range(1000000000000) t(a)"

def signal_soon(number, to_main):
    def send():
        time.sleep(0.5)  # the query is under way
        if to_main:
            os.kill(os.getpid(), number)
        else:  # the kernel may hand a signal sent to the process to any of its threads
            signal.pthread_kill(threading.get_ident(), number)
    threading.Thread(target=send, daemon=True).start()

con = duckdb.connect()
"""

STOPPED = PRELUDE + """
signal_soon(signal.{signame}, to_main={to_main})
try:
    with stops.stoppable(con):
        con.sql(FOREVER).fetchall()
except dg.DagsterExecutionInterruptedError:
    assert noted == [signal.{signame}], noted
    sys.exit(3)
"""

# Product code that catches DuckDB's error and goes on as though nothing happened.
SWALLOWED = PRELUDE + """
signal_soon(signal.SIGINT, to_main=True)
try:
    with stops.stoppable(con):
        try:
            con.sql(FOREVER).fetchall()
        except duckdb.Error:
            pass
        con.sql("SELECT 1").fetchall()
except dg.DagsterExecutionInterruptedError:
    sys.exit(3)
"""

# A block that ends leaves no thread behind and the wake-up fd as it found it, and one after it
# is still stopped by a signal (what the first left in the socket does not end its watcher).
AFTER_A_BLOCK = PRELUDE + """
threads = threading.active_count()
with stops.stoppable(con):
    assert con.sql("SELECT 42").fetchall() == [(42,)]
assert threading.active_count() == threads, threading.enumerate()
assert signal.set_wakeup_fd(-1) == -1
os.kill(os.getpid(), signal.SIGINT)  # outside a block: noted, and no connection is interrupted
time.sleep(0.1)
assert con.sql("SELECT 43").fetchall() == [(43,)]
assert noted == [signal.SIGINT], noted
signal_soon(signal.SIGTERM, to_main=True)
try:
    with stops.stoppable(con):
        con.sql(FOREVER).fetchall()
except dg.DagsterExecutionInterruptedError:
    assert threading.active_count() == threads, threading.enumerate()
    sys.exit(3)
"""


def run(script: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-W", "always::ResourceWarning", "-c", script], env=env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("to_main", [True, False], ids=["to-the-main-thread", "to-another-thread"])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_interrupts_the_query_and_leaves_as_stopped(signame, to_main):
    done = run(STOPPED.format(signame=signame, to_main=to_main))
    assert done.returncode == 3, done.stderr


def test_a_stop_that_product_code_swallowed_still_stops_the_block():
    done = run(SWALLOWED)
    assert done.returncode == 3, done.stderr


def test_a_block_that_ends_leaves_nothing_behind():
    done = run(AFTER_A_BLOCK)
    assert done.returncode == 3, done.stderr
    assert "unclosed" not in done.stderr  # the wake-up sockets are closed as the interpreter exits


def test_only_duckdbs_interruptions_count_as_a_stop():
    import duckdb

    from mesh_platform.stops import is_stop

    assert is_stop(duckdb.InterruptException("INTERRUPT Error: Interrupted!"))
    assert is_stop(RuntimeError("Query interrupted"))  # DuckDB's, when a signal's handler raised
    assert not is_stop(RuntimeError("Query interrupted by the network"))
    assert not is_stop(duckdb.OutOfMemoryException("Out of Memory Error"))
