"""The team set-up for real: a code server process per location (`dagster api grpc`), the
daemon and the webserver on the workspace of `grpc_server` entries, the instance (runs, event
log, schedules), the Iceberg catalog and the grants in one PostgreSQL database on loopback.
Runs are submitted through the webserver's GraphQL, queued, and launched by the daemon within
the limits: at most DOMAIN_LIMIT runs per domain (the `mesh/domain` tag), MAX_RUNS in all.

One deployment for the module (its start is most of the cost); the tests run in order, the
outage last.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import create_database, drop_database
from landing import EXPECTED_360, write_landing

from mesh_platform import storage
from mesh_platform.registry import location_order
from mesh_platform.runs import DOMAIN_TAG, write_instance_config
from mesh_platform.storage import Catalog
from mesh_platform.team import CodeServerSpec, TeamDeployment, code_server_specs, free_port, render_workspace
from mesh_platform.workspace import ROOT, locations

pytestmark = pytest.mark.timeout(900)  # the module's deployment starts within the first test

LOCATIONS = ["customer", "orders", "preferences", "federation"]
PRODUCT = {
    "customer": ("customer", "profiles"),
    "orders": ("orders", "history"),
    "preferences": ("preferences", "settings"),
    "federation": ("federation", "customer_360"),
}
DOMAIN_LIMIT, MAX_RUNS = 2, 3
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
V2_CUSTOMER = Path(__file__).parent / "v2_customer"


class Team:
    """The running deployment, and the test's own view of the same state."""

    def __init__(self, deployment: TeamDeployment, instance: dg.DagsterInstance, catalog: Catalog, server,
                 faults: Path):
        self.deployment, self.instance, self.catalog, self.postgres = deployment, instance, catalog, server
        self.ready, self.resume = faults / "ready", faults / "resume"

    def wait_runs(self, run_ids: list[str], timeout: float = 600, sample=None) -> dict[str, dg.DagsterRun]:
        """Until every run has finished; calls `sample()` between polls."""
        deadline = time.monotonic() + timeout
        while True:
            if sample is not None:
                sample()
            runs = {r.run_id: r for r in self.instance.get_runs(dg.RunsFilter(run_ids=run_ids))}
            if len(runs) == len(run_ids) and all(r.is_finished for r in runs.values()):
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(f"runs not finished in {timeout}s: {[(r.run_id[:8], r.status) for r in runs.values()]}")
            time.sleep(0.25)

    def wait_quiet(self, timeout: float = 600) -> None:
        """Until no run is queued or in progress (automation's included)."""
        statuses = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, *IN_PROGRESS]
        deadline = time.monotonic() + timeout
        while self.instance.get_runs(dg.RunsFilter(statuses=statuses)):
            assert time.monotonic() < deadline, "runs still queued or in progress"
            time.sleep(0.5)

    def in_progress(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
            domain = run.tags.get(DOMAIN_TAG, "(untagged)")
            counts[domain] = counts.get(domain, 0) + 1
        return counts


@pytest.fixture(scope="module")
def team(postgres_server, tmp_path_factory):
    postgres_server.start()
    url = create_database(postgres_server)
    base = tmp_path_factory.mktemp("team")
    home = base / "mesh"
    write_landing(home / "landing")
    specs = [CodeServerSpec(s.location, s.python_file, "127.0.0.1", free_port()) for s in code_server_specs()]
    # The preferences code server's runs pass a fault point at their commit: straight through
    # while `resume` exists, held there once the outage test removes it.
    faults = base / "faults"
    faults.mkdir()
    (faults / "resume").touch()
    deployment = TeamDeployment(
        home, home / "dagster", url, base / "servers", specs,
        extra_env={"MESH_DOMAIN_RUN_LIMIT": str(DOMAIN_LIMIT), "MESH_MAX_CONCURRENT_RUNS": str(MAX_RUNS)},
        base_env={k: v for k, v in os.environ.items() if not k.startswith("MESH_")},
        code_server_env={"preferences": {
            "MESH_FAULTPOINT": "commit", "MESH_FAULTPOINT_READY": str(faults / "ready"),
            "MESH_FAULTPOINT_RESUME": str(faults / "resume"),
        }},
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in deployment.env.items():
            if key.startswith("MESH_") or key == "DAGSTER_HOME":
                mp.setenv(key, value)
        write_instance_config(deployment.dagster_home, deployment.settings())
        instance = dg.DagsterInstance.from_config(str(deployment.dagster_home))
        # A first version of every asset (products and grants), published in this process into
        # the same instance and catalog: the deployment's automation starts with nothing to do.
        for name in location_order(LOCATIONS):  # customer/insights reads orders and preferences
            defs = locations()[name].definitions()
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, tags={DOMAIN_TAG: name}, raise_on_error=False,
            )
            assert result.success, name
        try:
            deployment.start()
            deployment.supervise()
            yield Team(deployment, instance, Catalog(home, url), postgres_server, faults)
        finally:
            deployment.stop()
            instance.dispose()
            postgres_server.start()
            drop_database(postgres_server, url)


def _run_ids_in_history(catalog: Catalog, namespace: str, name: str) -> set[str]:
    table = catalog.load_table(namespace, name)
    return {s.summary.additional_properties.get("mesh.run_id") for s in storage.published_snapshots(table)}


def _rows(snapshot) -> list[dict]:
    return duckdb.read_parquet(list(snapshot.files)).to_arrow_table().to_pylist()


def test_workspace_team_yaml_serves_every_location_of_workspace_yaml():
    specs = code_server_specs()
    assert [s.location for s in specs] == list(locations())
    assert {s.location: s.python_file for s in specs} == {n: loc.path for n, loc in locations().items()}
    assert len({s.port for s in specs}) == len(specs)
    text = (ROOT / "workspace-team.yaml").read_text()
    import yaml

    assert yaml.safe_load(text) == yaml.safe_load(render_workspace(specs))


def test_all_locations_concurrently_through_the_queue(team):
    d = team.deployment
    entries = d.location_entries()
    assert {n: e["__typename"] for n, e in entries.items()} == {n: "RepositoryLocation" for n in LOCATIONS}
    assert {p.name for p in d.processes} == {"webserver", "daemon", *(f"code-server-{n}" for n in LOCATIONS)}
    assert len({p.pid for p in d.processes}) == 6  # each its own process
    _wait(lambda: d.daemons_healthy() and all(d.daemons_healthy().values()), 120, "daemons healthy")

    # More runs than the limits let through: three of one domain (limit 2), eight in all (limit 3).
    requested = ["federation"] + ["customer"] * 3 + ["orders"] * 2 + ["preferences"] * 2
    run_ids = [d.launch(loc) for loc in requested]
    peak: dict[str, int] = {}
    totals: list[int] = []

    def sample():
        counts = team.in_progress()
        totals.append(sum(counts.values()))
        for domain, n in counts.items():
            peak[domain] = max(peak.get(domain, 0), n)

    runs = team.wait_runs(run_ids, sample=sample)
    assert {r.status for r in runs.values()} == {dg.DagsterRunStatus.SUCCESS}, d.processes[0].log()
    assert all(runs[i].tags[DOMAIN_TAG] == loc for i, loc in zip(run_ids, requested))
    # The limits held, and bound: two customer runs at once (a third waited), three runs in all.
    assert max(peak.values()) <= DOMAIN_LIMIT and max(totals) <= MAX_RUNS, (peak, max(totals))
    assert peak["customer"] == DOMAIN_LIMIT and max(totals) == MAX_RUNS, (peak, max(totals))

    # No commit lost to a concurrent one: every run's version is in its table's history.
    for run_id, loc in zip(run_ids, requested):
        assert run_id in _run_ids_in_history(team.catalog, *PRODUCT[loc]), (loc, run_id)

    # Automation goes on under the queue: the federation's sensor (evaluated by the daemon in the
    # federation's code server) rebuilds customer_360 from the upstream versions published after
    # the federation's own run, through the same queue, with its domain's tag.
    federation_run = team.instance.get_run_records(dg.RunsFilter(run_ids=[run_ids[0]]))[0]

    def rebuilt():
        automated = team.instance.get_run_records(dg.RunsFilter(
            tags={"dagster/sensor_name": "federation_automation"}, statuses=[dg.DagsterRunStatus.SUCCESS],
        ))
        return [r.dagster_run for r in automated if r.start_time and r.start_time > federation_run.end_time]

    _wait(rebuilt, 300, "customer_360 rebuilt by automation")
    assert rebuilt()[0].tags[DOMAIN_TAG] == "federation"

    team.wait_quiet()

    c360 = team.catalog.current("federation", "customer_360")
    got = {r.pop("customer_id"): r for r in _rows(c360)}
    assert got == EXPECTED_360
    for key in ("customer/profiles", "orders/history", "preferences/settings"):
        pinned = int(c360.summary[f"mesh.upstream.{key}"])
        assert pinned in team.catalog.history(*key.split("/")), key  # a version that was published
    # Every version each run published, and nothing else.
    for loc, (namespace, name) in PRODUCT.items():
        table_runs = _run_ids_in_history(team.catalog, namespace, name)
        materialized = {
            e.run_id for e in team.instance.fetch_materializations(dg.AssetKey([namespace, name]), limit=1000).records
        }
        assert table_runs == materialized, loc


def test_a_domain_deploys_on_its_own(team, tmp_path):
    d = team.deployment
    team.wait_quiet()
    others = {loc: d.code_servers[loc].pid for loc in ("orders", "preferences", "federation")}
    runs = [d.launch("orders"), d.launch("preferences")]
    _wait(lambda: all(r.status != dg.DagsterRunStatus.QUEUED for r in team.instance.get_runs(dg.RunsFilter(run_ids=runs))),
          120, "the other domains' runs launched")

    # The customer code server goes down: the UI shows that location as an error, the others serve.
    d.stop_code_server("customer")
    assert d.reload_workspace()["__typename"] == "Workspace"
    entries = d.location_entries()
    assert entries["customer"]["__typename"] == "PythonError"
    assert "Could not reach user code server" in entries["customer"]["message"]
    assert {n: entries[n]["__typename"] for n in others} == {n: "RepositoryLocation" for n in others}

    # Its new version (a new product) deployed alone, picked up on reload.
    v2 = tmp_path / "v2" / "customer"
    shutil.copytree(ROOT / "domains" / "customer", v2, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(V2_CUSTOMER, v2, dirs_exist_ok=True)
    d.start_code_server("customer", python_file=v2 / "definitions.py")
    reloaded = d.reload_location("customer")
    assert reloaded["locationOrLoadError"]["__typename"] == "RepositoryLocation", reloaded
    assets = {
        "/".join(a["assetKey"]["path"])
        for repo in d.location_entries()["customer"]["repositories"]
        for a in repo["assetNodes"]
    }
    assert {"customer/profiles", "customer/segments"} <= assets

    customer_run = d.launch("customer")
    finished = team.wait_runs([*runs, customer_run])
    assert {r.status for r in finished.values()} == {dg.DagsterRunStatus.SUCCESS}
    assert {loc: d.code_servers[loc].pid for loc in others} == others  # never restarted
    segments = {r["segment"]: r["customers"] for r in _rows(team.catalog.current("customer", "segments"))}
    assert segments == {"enterprise": 1, "smb": 1, "consumer": 1}  # C001's latest record is enterprise
    assert customer_run in _run_ids_in_history(team.catalog, "customer", "profiles")



def test_postgres_outage_mid_run_fails_it_cleanly_and_everything_recovers(team):
    d = team.deployment
    team.wait_quiet()
    before = team.catalog.current("preferences", "settings")
    rows_before = _rows(before)
    ready, resume = team.ready, team.resume
    ready.unlink(missing_ok=True)
    resume.unlink()  # the next preferences run stops at its commit
    run_id = d.launch("preferences")

    def at_commit():
        assert not team.instance.get_run_by_id(run_id).is_finished, team.instance.get_run_by_id(run_id).status
        return ready.exists()

    _wait(at_commit, 300, "the run at its commit")

    # PostgreSQL stops between the new version's files and its catalog commit, and stays down
    # longer than the platform waits for it.
    team.postgres.stop()
    resume.touch()
    time.sleep(storage.UNREACHABLE_SECONDS + 3)
    team.postgres.start()  # the same cluster, port and data

    run = team.wait_runs([run_id], timeout=300)[run_id]
    assert run.status == dg.DagsterRunStatus.FAILURE
    failures = [
        e.dagster_event.step_failure_data.error.message
        for e in team.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    assert len(failures) == 1, failures
    assert "preferences/settings: nothing published" in failures[0]
    assert "did not answer for 10s" in failures[0] and "Connection refused" in failures[0]
    assert "The previous snapshot stays current" in failures[0]

    # Nothing half-published: the same version is current, and reads as before.
    after = team.catalog.current("preferences", "settings")
    assert after.snapshot_id == before.snapshot_id
    assert _rows(after) == rows_before
    assert run_id not in _run_ids_in_history(team.catalog, "preferences", "settings")

    # Everything recovers: the webserver answers from the database (its one pooled connection
    # predates the restart and fails once), the daemon launches, a new run publishes.
    _wait(lambda: _answers(d), 60, "the webserver reading runs again")
    again = d.launch("preferences")
    assert team.wait_runs([again])[again].status == dg.DagsterRunStatus.SUCCESS
    assert team.catalog.current("preferences", "settings").summary["mesh.run_id"] == again
    assert all(d.daemons_healthy().values())
    assert all(p.running for p in d.processes)


ANSWERS = """
{ runsOrError(limit: 1) { ... on Runs { results { runId
    eventConnection(limit: 1) { events { __typename } } } } }
  schedulesOrError(repositorySelector: {repositoryLocationName: "customer", repositoryName: "__repository__"}) {
    ... on Schedules { results { name scheduleState { status } } } } }
"""


def _answers(d: TeamDeployment) -> bool:
    """Whether the webserver reads runs, events and schedules from the database. Its pooled
    connection per storage (no liveness check: Dagster's optimize_for_webserver) predates the
    restart: the first request on each fails once, and SQLAlchemy then drops it."""
    try:
        data = d.graphql(ANSWERS)
    except RuntimeError:
        return False
    return bool(data["runsOrError"]["results"]) and data["schedulesOrError"]["results"][0]["scheduleState"]["status"] == "RUNNING"


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.5)
