"""`dagster dev` on workspace.yaml: the four locations load, the UI's global asset graph joins
them (the cross-location edges into federation/customer_360), and Ctrl-C stops everything.

One `dagster dev` for the whole file (about 30 s to start); the last test stops it.
"""

from __future__ import annotations

import time

import psutil
import pytest
from workspace.server import DagsterServer

LOCATIONS = ["customer", "federation", "orders", "preferences"]
# Measured: GraphQL answers ~30 s after start on an idle 2-core machine, ~110 s at load 8;
# SIGINT stops everything in ~4 s idle, 15-17 s at load 8 (dagster dev waits for its
# webserver and daemon, then its code servers).
READY_WITHIN = 180
STOP_WITHIN = 30

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
def dev(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui") / "mesh"
    server = DagsterServer(["dev", "-w", "workspace.yaml"], home=home, executable="dagster").start()
    try:
        server.ready_seconds = server.wait_ready(timeout=READY_WITHIN)
        yield server
    finally:
        server.stop()
        server.kill_leftovers()


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


def test_sigint_stops_dagster_dev_and_everything_it_started(dev):
    started = dev.descendants()
    # dagster dev runs a webserver, a daemon and a code server per location (at least).
    assert len(started) >= 6, [p.cmdline() for p in started]
    identities = {(p.pid, p.create_time()) for p in started}

    code = dev.stop(grace=STOP_WITHIN)
    assert not dev.killed, f"dagster dev did not exit within {STOP_WITHIN} s of SIGINT:\n{dev.log()}"
    assert dev.stop_seconds < STOP_WITHIN
    assert code == 0, dev.log()

    # Children may take a moment longer than their parent to finish exiting.
    deadline = time.monotonic() + 10
    while True:
        left = _leftovers(identities, str(dev.dagster_home), str(dev.port))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert left == [], "processes left behind:\n" + "\n".join(left) + f"\n{dev.log()}"


def _leftovers(identities, dagster_home: str, port: str) -> list[str]:
    """Processes still alive that dagster dev started: its recorded descendants, and any
    process whose environment has our temporary DAGSTER_HOME or whose command line our port."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status", "create_time"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(p.info["cmdline"] or [])
            ours = (p.pid, p.info["create_time"]) in identities
            if not ours:
                try:
                    ours = p.environ().get("DAGSTER_HOME") == dagster_home
                except (psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            if not ours:
                ours = f"-p {port}" in cmdline or f"--port {port}" in cmdline
            if ours:
                found.append(f"{p.pid}: {cmdline}")
        except psutil.NoSuchProcess:
            continue
    return found
