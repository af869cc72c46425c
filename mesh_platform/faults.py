"""Named points in a publish where a test can stop the process on purpose.

With MESH_FAULTPOINT=<name> (and MESH_FAULTPOINT_READY=<file>), the process reaching that point
writes its pid to the file and waits there, so that a test can signal or kill it at exactly
that phase. With MESH_FAULTPOINT_RESUME=<file> too, it goes on once that file exists (a test
changes the world around the process, e.g. stops a database, then lets it continue). With
MESH_FAULTPOINT_PRODUCT=<domain/name>, only that product's step stops, at a point of its publish
(compute, write, audit, event): the others run on. Without the variables a point costs a
dictionary lookup.
"""

from __future__ import annotations

import os
import time

POINTS = ("compute", "write", "audit", "commit", "read-back", "event")
WAIT_SECONDS = 120


def point(name: str, product: str | None = None) -> None:
    if os.environ.get("MESH_FAULTPOINT") != name:
        return
    if os.environ.get("MESH_FAULTPOINT_PRODUCT", product) != product:
        return
    ready = os.environ["MESH_FAULTPOINT_READY"]
    # A file of its own to rename: side-by-side forks reach the same point at once.
    mine = f"{ready}.{os.getpid()}.tmp"
    with open(mine, "w") as f:
        f.write(str(os.getpid()))
    os.replace(mine, ready)
    resume = os.environ.get("MESH_FAULTPOINT_RESUME")
    # The test ends the process here, or lets it go on. Short sleeps, not one long one: the
    # kernel may hand the test's signal to another thread (the import beside the query), and
    # the main thread runs the handler only when its sleep ends.
    deadline = time.monotonic() + WAIT_SECONDS
    while not (resume and os.path.exists(resume)) and time.monotonic() < deadline:
        time.sleep(0.05)
