"""`mesh ui --materialize` (what `make dev` runs: dagster dev on workspace.yaml, then every product
materialized through it) over a home with landing data: the four locations load, the UI's global
asset graph joins them (the cross-location edges into federation/customer_360), every run sits
under its location (the Overview timeline included), a browser shows what a user needs, and
Ctrl-C stops everything.

One UI serves the module (about 30 s to start); a test that needs one while none is running
(after the Ctrl-C test, whatever the order) starts another.
"""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import ROOT
from landing import write_landing
from workspace.server import READY_WITHIN, STOP_WITHIN, DagsterServer, leftovers

from mesh_platform.contracts import load_contract
from mesh_platform.storage import Catalog

LOCATIONS = ["customer", "federation", "orders", "preferences"]

ASSET_GRAPH_QUERY = """
{
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    dependedByKeys { path }
    repository { location { name } }
    owners { ... on TeamAssetOwner { team } }
  }
}
"""

# key -> (defining location, upstream keys, downstream keys), across the whole deployment.
EXPECTED_GRAPH = {
    "customer/landing/crm_export": ("customer", set(), {"customer/profiles"}),
    "customer/profiles": (
        "customer", {"customer/landing/crm_export"}, {"federation/customer_360", "customer/insights"},
    ),
    "customer/insights": ("customer", {"customer/profiles", "orders/history", "preferences/settings"}, set()),
    "orders/landing/orders": ("orders", set(), {"orders/history"}),
    "orders/landing/order_lines": ("orders", set(), {"orders/history"}),
    "orders/history": (
        "orders", {"orders/landing/orders", "orders/landing/order_lines"},
        {"federation/customer_360", "customer/insights"},
    ),
    "preferences/landing/preference_events": ("preferences", set(), {"preferences/settings"}),
    "preferences/settings": (
        "preferences", {"preferences/landing/preference_events"},
        {"federation/customer_360", "customer/insights"},
    ),
    "federation/customer_360": (
        "federation", {"customer/profiles", "orders/history", "preferences/settings"}, set(),
    ),
    **{f"{n}/governance/grants": (n, set(), set()) for n in ("customer", "orders", "preferences", "federation")},
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A mesh home with the hand-written landing set, nothing built yet."""
    home = tmp_path_factory.mktemp("ui") / "mesh"
    write_landing(home / "landing")
    return home


@pytest.fixture(scope="module")
def servers(home):
    started: list[DagsterServer] = []

    def running() -> DagsterServer:
        if not started or started[-1].exit_code is not None:
            server = DagsterServer(["ui", "--materialize"], home=home, executable="mesh").start()
            started.append(server)
            server.ready_seconds = server.wait_ready(timeout=READY_WITHIN)
        return started[-1]

    yield running
    for server in started:
        server.stop()
        server.kill_leftovers()


@pytest.fixture
def dev(servers) -> DagsterServer:
    return servers()


@pytest.fixture(scope="module")
def materialized(servers) -> str:
    """What `mesh ui --materialize` (`make dev`) printed once it built every product through its
    UI, returned once the UI has settled: each location's automation has ticked since, and no
    run is in progress (a product and its input updated between two ticks get one more run:
    mesh_platform/follow.py)."""
    dev = servers()
    deadline = time.monotonic() + READY_WITHIN
    while "Ctrl-C stops it" not in (out := dev.log_path.read_text()):
        assert dev.proc.poll() is None and time.monotonic() < deadline, dev.log()
        time.sleep(0.5)
    ended = time.time()
    while not _settled(dev, ended):
        assert time.monotonic() < deadline, f"the UI did not settle within {READY_WITHIN}s:\n{dev.log()}"
        time.sleep(1)
    return out


SENSOR_TICK_QUERY = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { ... on Sensor { sensorState { ticks(limit: 1) { timestamp status } } } }
}
"""
IN_PROGRESS_QUERY = """
{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED]}) { ... on Runs { results { runId } } } }
"""


def _settled(dev: DagsterServer, since: float) -> bool:
    for location in LOCATIONS:
        selector = {"repositoryLocationName": location, "repositoryName": "__repository__",
                    "sensorName": f"{location}_automation"}
        ticks = dev.graphql(SENSOR_TICK_QUERY, {"selector": selector})["sensorOrError"]["sensorState"]["ticks"]
        if not ticks or ticks[0]["timestamp"] < since or ticks[0]["status"] == "STARTED":
            return False
    return not dev.graphql(IN_PROGRESS_QUERY)["runsOrError"]["results"]


def _paths(keys) -> set[str]:
    return {"/".join(k["path"]) for k in keys}


def test_four_locations_load(dev):
    entries = dev.location_entries(timeout=READY_WITHIN)
    assert {n: e and e["__typename"] for n, e in entries.items()} == {
        name: "RepositoryLocation" for name in LOCATIONS
    }, entries


def test_global_asset_graph_joins_the_locations(dev):
    dev.location_entries(timeout=READY_WITHIN)
    nodes = dev.graphql(ASSET_GRAPH_QUERY)["assetNodes"]
    graph = {}
    for node in nodes:
        key = "/".join(node["assetKey"]["path"])
        assert key not in graph, f"{key} appears twice in the global graph"
        graph[key] = (
            node["repository"]["location"]["name"],
            _paths(node["dependencyKeys"]),
            _paths(node["dependedByKeys"]),
        )

    # The cross-location edges, spelled out: three domain products into customer_360.
    assert graph["federation/customer_360"][1] == {
        "customer/profiles", "orders/history", "preferences/settings",
    }
    for product in ("customer/profiles", "orders/history", "preferences/settings"):
        assert "federation/customer_360" in graph[product][2], product
    # customer/insights, from the customer domain's second team, reads across locations too.
    assert graph["customer/insights"][1] == {"customer/profiles", "orders/history", "preferences/settings"}
    owners = {"/".join(n["assetKey"]["path"]): [o.get("team") for o in n["owners"]] for n in nodes}
    assert owners["customer/insights"] == ["customer-analytics"]
    assert owners["customer/profiles"] == ["customer-team"]
    # And the whole graph: each key defined once, by its own location.
    assert graph == EXPECTED_GRAPH


PRODUCTS = ["customer/profiles", "customer/insights", "orders/history", "preferences/settings",
            "federation/customer_360"]
C360 = load_contract(ROOT / "mesh_platform/federation/contracts/customer_360.odcs.yaml")


RUNS_QUERY = """
{
  runsOrError {
    ... on Runs { results { runId pipelineName status repositoryOrigin { repositoryLocationName repositoryName } } }
  }
}
"""
LATEST_RUN_QUERY = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) { ... on Asset { assetMaterializations(limit: 1) { runId } } }
}
"""


def test_mesh_launches_through_the_ui_and_every_run_sits_under_its_location(dev, materialized):
    """`mesh ui --materialize` starts the UI, then materializes through it: every run the UI lists
    (mesh's, and those the landing sensors and automation launched) has its code location as
    origin, the Overview timeline's key, and each product was last built by a run of its own
    location."""
    assert f"\nlaunching through the Dagster UI on {dev.url}\n" in materialized, materialized
    assert "Done in " in materialized and "PASS=5 WARN=0 BLOCKED=0 ERROR=0 SKIP=0" in materialized, materialized
    assert "Traceback" not in materialized
    runs = {r["runId"]: r for r in dev.graphql(RUNS_QUERY)["runsOrError"]["results"]}
    for run in runs.values():
        origin = run["repositoryOrigin"]
        assert run["status"] in ("SUCCESS", "QUEUED", "STARTING", "STARTED"), run  # automation may still run
        assert origin is not None and origin["repositoryName"] == "__repository__", run
    assert any(r["pipelineName"] == "federation_products" for r in runs.values())
    for key in PRODUCTS:
        latest = dev.graphql(LATEST_RUN_QUERY, {"path": key.split("/")})["assetOrError"]["assetMaterializations"]
        assert runs[latest[0]["runId"]]["repositoryOrigin"]["repositoryLocationName"] == key.split("/")[0], key


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, "no chromium on PATH: `make setup` installs Debian's chromium package (apt-get install chromium)"
    return path


def test_what_a_user_sees_in_the_browser(dev, home, materialized):
    """Headless Chromium (Debian's, driven by Playwright: no browser download) on the running UI.
    In a thread of its own: Playwright's sync API refuses a thread where an asyncio loop runs,
    as earlier tests in this process may have left one."""
    from concurrent.futures import ThreadPoolExecutor

    snapshot_id = str(Catalog(home).current("federation", "customer_360").snapshot_id)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_browse, dev.url, snapshot_id).result()


def _browse(url: str, snapshot_id: str) -> None:
    from playwright.sync_api import sync_playwright

    checks = ["schema", *(r.name for r in C360.rules), *(["volume"] if C360.volume_max_drop is not None else [])]
    with sync_playwright() as p:
        # As root (a container), Chromium runs only without its sandbox.
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})

            # The asset graph: a group per domain.
            page.goto(f"{url}/asset-groups", wait_until="networkidle")
            page.get_by_text("Global asset lineage").wait_for()
            for group in LOCATIONS:  # drawn after the page's title
                page.get_by_text(group, exact=True).first.wait_for()

            # The catalog: every product, materialized.
            page.goto(f"{url}/assets", wait_until="networkidle")
            page.get_by_text("federation / customer_360", exact=True).first.wait_for()
            assert {key: _catalog_status(page.inner_text("body"), key) for key in PRODUCTS} == {
                key: "Materialized" for key in PRODUCTS}

            # customer_360's page: its owner, the snapshot id to the last digit.
            page.goto(f"{url}/assets/federation/customer_360", wait_until="networkidle")
            page.get_by_text("snapshot_id", exact=True).wait_for()
            text = page.inner_text("body")
            assert C360.team in text
            assert snapshot_id in text, f"snapshot {snapshot_id} not shown in full"

            # Its checks: every one the contract declares, passed.
            page.goto(f"{url}/assets/federation/customer_360?view=checks", wait_until="networkidle")
            page.get_by_text(f"Checks ({len(checks)})").wait_for()
            text = page.inner_text("body")
            listed = text[text.index(f"Checks ({len(checks)})"):]
            for name in checks:
                assert f"{name}\n{name}\nSucceeded" in listed, name
            assert "Failed" not in listed.split("Execute\nOverview")[0]

            # The Overview timeline: a row per location's products job.
            page.goto(f"{url}/overview/activity/timeline", wait_until="networkidle")
            page.get_by_text("federation_products", exact=True).first.wait_for()
            text = page.inner_text("body")
            for location in LOCATIONS:
                assert f"{location}_products" in text, location
        finally:
            browser.close()


def _catalog_status(text: str, key: str) -> str | None:
    """The status the catalog shows for `key`: a row is the key twice (link and tooltip), its
    description, its location and group, then its status, up to the next row's key pair."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    shown = key.replace("/", " / ")
    start = next(i for i in range(len(lines) - 1) if lines[i] == lines[i + 1] == shown)
    for i in range(start + 2, len(lines)):
        if i + 1 < len(lines) and lines[i] == lines[i + 1] and " / " in lines[i]:
            return None  # the next row: no status in this one
        if lines[i] in ("Materialized", "Failed", "Never materialized", "Missing"):
            return lines[i]
    return None


def test_sigint_stops_the_ui_and_everything_it_started(dev):
    started = dev.descendants()
    # mesh ui runs dagster dev: a webserver, a daemon and a code server per location (at least).
    assert len(started) >= 7, [p.cmdline() for p in started]
    identities = {(p.pid, p.create_time()) for p in started}

    code = dev.stop(grace=STOP_WITHIN)
    assert not dev.killed, f"dagster dev did not exit within {STOP_WITHIN} s of SIGINT:\n{dev.log()}"
    assert dev.stop_seconds < STOP_WITHIN
    assert code == 0, dev.log()

    left = leftovers(identities, str(dev.dagster_home), str(dev.port))
    assert left == [], "processes left behind:\n" + "\n".join(left) + f"\n{dev.log()}"
