"""A real `mesh materialize` stopped by SIGINT, SIGTERM and SIGKILL at every phase of a publish.

The landing data alternates between two versions, A and B, so that every publish changes the
product. A fault point (mesh_platform.faults) holds the process at an exact phase; the test
then signals it. After every stop:

- the product's current snapshot is readable and its rows are exactly one whole version: the
  previous one when the stop came before the commit landed, the new one after;
- the next run succeeds (a real Dagster run);
- after maintenance, the table's folder holds exactly the files the current snapshot and its
  metadata name: nothing an interrupted run left behind survives, nothing published is lost.

At the end no run is left STARTED: those whose process was killed are marked failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import step_failure_messages
from landing import CRM_CSV, write_landing

from mesh_platform import faults
from mesh_platform.maintenance import maintain
from mesh_platform.runs import fail_orphaned_runs, write_instance_config
from mesh_platform.storage import Catalog
from mesh_platform.workspace import locations

MESH = str(Path(sys.executable).with_name("mesh"))
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
ROUNDS_PER_PHASE = 4  # x 6 phases = 24 stops per signal
AFTER_COMMIT = {"read-back", "event"}  # the catalog already names the new version there
# A home's first run: the customer location's insights read orders and preferences. The runs
# stopped below are the customer location's (profiles, then insights: profiles meets the point).
MATERIALIZE_ALL = [MESH, "materialize", "orders", "preferences", "customer", "--in-process"]
# Version B: every customer's email changes (and C002 gains a country); same customers, so the
# volume check has nothing to say.
VERSIONS = {
    "A": CRM_CSV,
    "B": CRM_CSV.replace("example.com", "example.org").replace("ben.jones@example.org,,smb", "ben.jones@example.org,NL,smb"),
}


def rows(snapshot) -> list[tuple]:
    return sorted(duckdb.read_parquet(list(snapshot.files)).fetchall())


def clean_rows(tmp_path: Path) -> dict[str, list[tuple]]:
    """Each version's profiles as a clean run publishes them, in a home of its own."""
    expected = {}
    for name, csv in VERSIONS.items():
        home = tmp_path / f"clean-{name}"
        write_landing(home / "landing", crm_csv=csv)
        env = {**os.environ, "MESH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
        subprocess.run(MATERIALIZE_ALL, env=env, check=True, capture_output=True)
        expected[name] = rows(Catalog(home).current("customer", "profiles"))
    assert expected["A"] != expected["B"]
    return expected


class Worker:
    """One mesh home, stopped again and again."""

    def __init__(self, home: Path, expected: dict[str, list[tuple]]):
        self.home, self.expected = home, expected
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
        self.env |= {"MESH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
        write_instance_config(home / "dagster")
        self.version = "A"
        write_landing(home / "landing", crm_csv=VERSIONS["A"])
        subprocess.run(MATERIALIZE_ALL, env=self.env, check=True, capture_output=True)
        self.counts: Counter = Counter()
        self.orphans_before = 0  # files no version names, found before each maintenance

    def stop_once(self, signame: str, phase: str, round_: int) -> None:
        new = "B" if self.version == "A" else "A"
        write_landing(self.home / "landing", crm_csv=VERSIONS[new])
        ready = self.home / f"ready-{signame}-{phase}-{round_}"
        # PYTHONFAULTHANDLER: a process that does not stop is made to print every thread's stack.
        env = self.env | {"MESH_FAULTPOINT": phase, "MESH_FAULTPOINT_READY": str(ready), "PYTHONFAULTHANDLER": "1"}
        proc = subprocess.Popen(
            [MESH, "materialize", "customer", "--in-process"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, f"{phase}: mesh ended before the fault point: {proc.stderr.read()[-2000:]!r}"
            assert time.monotonic() < deadline, f"{phase}: fault point not reached"
            time.sleep(0.02)
        os.kill(int(ready.read_text()), SIGNALS[signame])
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGABRT)
            _, err = proc.communicate(timeout=60)
            # An AssertionError, not pytest.fail: it reaches the test from a worker process pickled.
            raise AssertionError(f"{signame} at {phase}: mesh did not stop within 60 s; where its threads were:\n"
                                 + err.decode(errors="replace")[-8000:]) from None
        proc.stderr.close()

        catalog = Catalog(self.home)
        current = catalog.current("customer", "profiles")
        landed = new if phase in AFTER_COMMIT else self.version
        assert rows(current) == self.expected[landed], f"{signame} at {phase}: not version {landed}"

        # The next run succeeds and publishes the landing data now in place: a real Dagster run of
        # the location's daily job (profiles), in this worker's process (whose environment is this home's).
        defs = locations()["customer"].definitions()
        job = defs.resolve_job_def(defs.resolve_schedule_def("customer_daily").job_name)
        with dg.DagsterInstance.from_config(str(self.home / "dagster")) as instance:
            result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert result.success, f"{signame} at {phase}: the next run failed: {step_failure_messages(result)}"
        self.version = new
        assert rows(catalog.current("customer", "profiles")) == self.expected[new]

        # Maintenance leaves exactly what the current snapshot and its metadata name.
        self.orphans_before += sum(len(o) for o in self.orphans(catalog))
        maintain(catalog, keep_versions=1, min_age=timedelta(0), orphan_age=timedelta(0))
        current = catalog.current("customer", "profiles")
        data = sorted(str(p) for p in (self.home / "warehouse/customer/profiles/data").iterdir())
        assert data == sorted(current.files), f"{signame} at {phase}: data files of expired versions or orphans"
        orphan_data, orphan_metadata = self.orphans(catalog)
        assert not orphan_data, f"{signame} at {phase}: orphan data files {sorted(orphan_data)}"
        assert not orphan_metadata, f"{signame} at {phase}: orphan metadata files {sorted(orphan_metadata)}"
        assert not any((self.home / "tmp").rglob("*.*")) if (self.home / "tmp").exists() else True
        self.counts[(signame, phase)] += 1


    def orphans(self, catalog: Catalog) -> tuple[set[str], set[str]]:
        """Files in profiles' table folder that no snapshot and no metadata of it names."""
        table = catalog.load_table("customer", "profiles")
        data = {str(p) for p in (self.home / "warehouse/customer/profiles/data").iterdir()}
        for sid in catalog.history("customer", "profiles"):
            data -= set(catalog.current("customer", "profiles", sid).files)
        named = {Path(catalog.local_path(table.metadata_location)).name}
        named |= {Path(catalog.local_path(m.metadata_file)).name for m in table.metadata.metadata_log}
        named |= {Path(catalog.local_path(s.manifest_list)).name for s in table.snapshots()}
        named |= {Path(catalog.local_path(m.manifest_path)).name for s in table.snapshots() for m in s.manifests(table.io)}
        metadata = {p.name for p in (self.home / "warehouse/customer/profiles/metadata").iterdir()} - named
        return data, metadata


def drive(home: Path, expected: dict, steps: list) -> tuple[Counter, int]:
    """In a worker process: this home's environment, then every stop of `steps`."""
    worker = Worker(home, expected)
    os.environ.clear()
    os.environ.update(worker.env)
    for step in steps:
        worker.stop_once(*step)
    return worker.counts, worker.orphans_before


@pytest.mark.timeout(900)
def test_publish_survives_every_signal_at_every_phase(tmp_path):
    expected = clean_rows(tmp_path)
    # Two homes at once, one per core, each in a process of its own (Dagster runs are not meant
    # to share a process's threads), each stopped at every (signal, phase) in turn.
    plan = [(s, p, r) for s in SIGNALS for p in faults.POINTS for r in range(ROUNDS_PER_PHASE)]
    homes = [tmp_path / f"home-{i}" for i in range(2)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(drive, homes, [expected] * 2, [plan[i::2] for i in range(2)]))

    counts = results[0][0] + results[1][0]
    per_signal = Counter()
    for (signame, _), n in counts.items():
        per_signal[signame] += n
    print("\nstops per signal:", dict(per_signal), "\nper (signal, phase):", dict(sorted(counts.items())),
          f"\norphan files found before maintenance: {results[0][1] + results[1][1]}, after: 0")
    assert per_signal == {s: ROUNDS_PER_PHASE * len(faults.POINTS) for s in SIGNALS}

    # No run stays STARTED: a killed process's run is marked failed by the run monitor (each
    # `mesh` command sweeps before it starts, as the platform's sensor does every 30 s).
    by_monitor, stopped = 0, 0
    for home in homes:
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            fail_orphaned_runs(instance)
            assert instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) == []
            for record in instance.get_run_records(filters=dg.RunsFilter(tags={"mesh/trigger": "mesh-cli"})):
                if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS:
                    continue
                stopped += 1
                failure = instance.get_records_for_run(record.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
                by_monitor += any("run monitor" in r.event_log_entry.message for r in failure)
    # Every stopped run ended unsuccessful. Dagster ends a run itself on SIGINT and SIGTERM;
    # after SIGKILL nothing runs, and the monitor marks it.
    print(f"stopped runs: {stopped}, marked failed by the run monitor: {by_monitor}")
    assert stopped == sum(per_signal.values())
    assert by_monitor == per_signal["SIGKILL"]
